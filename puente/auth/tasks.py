"""Housekeeping of sign-in state, run by Celery beat every ten minutes."""

from __future__ import annotations

import logging

from puente.auth import service
from puente.db import unit_of_work
from puente.tasks import celery_app

log = logging.getLogger("puente.auth")
PURGE_TASK = "puente.auth.purge_expired"


@celery_app.task(name=PURGE_TASK, acks_late=True)
def purge_expired() -> dict[str, int]:
    """Delete expired assertion ids, spent or expired codes and old sign-in failures.
    Idempotent: a second run (or a redelivery) finds nothing left to delete."""
    with unit_of_work() as session:
        counts = service.purge_expired(session)
    log.info("auth_state_purged", extra={"counts": counts})
    return counts
