"""The sealer as a Celery task: Celery beat runs it every second when a broker is set;
without one, `service.append` enqueues it to run in-process after the request commits."""

from __future__ import annotations

from puente.audit.sealer import BATCH_SIZE, seal
from puente.audit.service import SEAL_TASK
from puente.db import unit_of_work
from puente.tasks import celery_app

# One run chains at most this many batches (one transaction each) and leaves the rest to
# the next run, so a backlog after an outage never holds one transaction for minutes.
MAX_BATCHES_PER_RUN = 20


def seal_backlog(max_batches: int | None = MAX_BATCHES_PER_RUN) -> int:
    """Seal in committed batches until nothing is left (or `max_batches`); rows chained."""
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        with unit_of_work() as session:
            sealed = seal(session)
        total += sealed
        batches += 1
        if sealed < BATCH_SIZE:  # the last batch, or another sealer holds the lock
            break
    return total


@celery_app.task(name=SEAL_TASK, acks_late=True)
def seal_task() -> int:
    """Idempotent: a second run (or a redelivery after a crash) finds nothing new to chain."""
    return seal_backlog()
