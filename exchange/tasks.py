"""The exchange's Celery tasks: thin, idempotent, one transaction per batch."""

from __future__ import annotations

import contextvars

from sqlalchemy.orm import Session

from exchange import bulk, export_jobs, export_run, import_jobs
from puente.db import retrying, unit_of_work
from puente.tasks import celery_app
from translation.i18n import N_


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
    bulk.after_load(len(run.lines))


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


@celery_app.task(name=export_jobs.EXPORT_TASK, acks_late=True)
def export_task(job_id: str) -> None:
    """Write an `$export` job's files, a page per transaction, from where it stopped.

    Run in a context of its own: with no broker the task runs in the kick-off request's
    thread after it commits, and the disclosures it makes must be audited as the
    export's (written by `service.shown` itself), not noted on that finished request."""
    contextvars.Context().run(_export, job_id)


def _export(job_id: str) -> None:
    if not retrying(lambda session: export_run.begin(session, job_id=job_id)):
        return
    try:
        while retrying(lambda session: export_run.run_page(session, job_id=job_id)):
            pass
    except Exception:
        # Its partial files are deleted; the status says the export failed (500).
        with unit_of_work() as session:
            export_run.fail(session, job_id=job_id, error=N_("error.export_failed"))
        raise


@celery_app.task(name=export_jobs.PURGE_TASK, acks_late=True)
def purge_exports() -> None:
    """Delete the files of exports past their retention (Celery beat, every 10 minutes)."""
    with unit_of_work() as session:
        export_jobs.purge_expired(session)
