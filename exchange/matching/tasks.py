"""The matching task: thin, idempotent, takes ids and reloads what it needs."""

from __future__ import annotations

from exchange.matching import service
from puente.db import unit_of_work
from puente.tasks import celery_app

MATCH_TASK = "exchange.matching.match"
# Records evaluated per transaction: a bulk import's batch commits its links in a few
# transactions, and a failure loses at most one chunk's work (the task is run again).
CHUNK = 200


@celery_app.task(name=MATCH_TASK, acks_late=True)
def match_task(pks: list[int]) -> None:
    """Re-evaluate the links of the Patients `pks` (resource row ids); gone ones are skipped."""
    for start in range(0, len(pks), CHUNK):
        with unit_of_work() as session:
            service.evaluate_many(session, pks=[int(pk) for pk in pks[start : start + CHUNK]])
