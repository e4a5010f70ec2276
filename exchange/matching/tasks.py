"""The matching task: thin, idempotent, takes ids and reloads what it needs."""

from __future__ import annotations

from collections.abc import Callable

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


def rescore_all(on_chunk: Callable[[int, int], None] | None = None) -> int:
    """Score every matched record's pairs again with the active model (after `puente
    matcher activate`), CHUNK records a transaction; `on_chunk(done, total)` after each.
    Interrupted, it can run again: pairs already scored by this model are left as they are.
    Returns how many records it went through."""
    with unit_of_work() as session:
        total = service.record_count(session)
    done, after = 0, 0
    while True:
        with unit_of_work() as session:
            pks = service.record_pks(session, after=after, limit=CHUNK)
            if pks:
                service.evaluate_many(session, pks=pks, rescoring=True)
        if not pks:
            return done
        done, after = done + len(pks), pks[-1]
        if on_chunk is not None:
            on_chunk(done, max(total, done))
