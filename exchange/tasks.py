"""The exchange's Celery tasks: thin, idempotent, one transaction per batch."""

from __future__ import annotations

from exchange import import_jobs
from puente.db import unit_of_work
from puente.tasks import celery_app


@celery_app.task(name=import_jobs.IMPORT_TASK, acks_late=True)
def import_task(job_id: str) -> None:
    """Write an `$import` job's lines, a batch per transaction, from where it stopped.

    A redelivery (the worker died; `task_reject_on_worker_lost` and the broker's
    visibility timeout hand the task on) resumes after the last committed batch; a
    finished or cancelled job makes it return at once.
    """
    with unit_of_work() as session:
        run = import_jobs.begin(session, job_id=job_id)
    if run is None:
        return
    try:
        while True:
            with unit_of_work() as session:
                if not import_jobs.run_batch(session, run=run):
                    break
    except Exception:
        # The lines committed so far stay; the job says it failed, and posting the same
        # NDJSON again finishes it (the writes are idempotent).
        with unit_of_work() as session:
            import_jobs.fail(session, job_id=job_id)
        raise
