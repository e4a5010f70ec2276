"""The exchange's Celery tasks: thin, idempotent, one transaction per batch."""

from __future__ import annotations

from sqlalchemy.orm import Session

from exchange import bulk, import_jobs
from puente.db import retrying, unit_of_work
from puente.tasks import celery_app


@celery_app.task(name=import_jobs.IMPORT_TASK, acks_late=True)
def import_task(job_id: str) -> None:
    """Write an `$import` job's lines, a batch per transaction, from where it stopped.

    A redelivery (the worker died; `task_reject_on_worker_lost` and the broker's
    visibility timeout hand the task on) or a resume (`POST .../$resume`) goes on after
    the last committed batch; a finished or cancelled job makes it return at once. A
    batch that loses to a concurrent writer (deadlock, serialization failure, a resource
    created meanwhile) rolls back and runs again, a bounded number of times; if it still
    loses, its lines are reported refused as `transient` and the job goes on.
    """
    run = retrying(lambda session: import_jobs.begin(session, job_id=job_id))
    if run is None:
        return
    try:
        while _next_batch(run):
            pass
    except Exception:
        # The lines committed so far stay; the job says it failed and keeps its NDJSON,
        # so that resuming it goes on from the last committed batch.
        with unit_of_work() as session:
            import_jobs.fail(session, job_id=job_id)
        raise


def _next_batch(run: import_jobs.Run) -> bool:
    runs = 0

    def write(session: Session) -> bool:
        nonlocal runs
        runs += 1
        return import_jobs.run_batch(session, run=run, reparse=runs > 1)

    try:
        return retrying(write, retry_on=bulk.lost_to_another)
    except Exception as exc:
        if not bulk.lost_to_another(exc):
            raise
    return retrying(lambda session: import_jobs.run_batch(session, run=run, transient=True))
