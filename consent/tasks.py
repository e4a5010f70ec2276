"""The consent domain's Celery tasks: thin, idempotent, one transaction per batch."""

from __future__ import annotations

from consent import service
from puente.db import unit_of_work
from puente.tasks import celery_app

RELABEL_TASK = "puente.consent.relabel"


def relabel_stale(*, batch: int = 500) -> int:
    """Recompute the labels of every resource labelled under another lists version (or
    whose hospital system's Part 2 programs changed), a pk range per transaction; no
    version is written. Returns how many were relabelled. Running it again, or after it
    died half-way, carries on with what is still stale."""
    done, after = 0, 0
    while True:
        with unit_of_work() as session:
            pks = service.stale_pks(session, after=after, limit=batch)
            if not pks:
                return done
            done += service.relabel_pks(session, pks)
        after = pks[-1]


@celery_app.task(name=RELABEL_TASK, acks_late=True)
def relabel_task(batch: int = 500) -> int:
    return relabel_stale(batch=batch)
