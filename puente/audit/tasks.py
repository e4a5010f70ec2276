"""The sealer as a Celery task: Celery beat runs it every second when a broker is set;
without one, `service.append` enqueues it to run in-process after the request commits."""

from __future__ import annotations

import threading
import time

from puente.audit.sealer import BATCH_SIZE, seal
from puente.audit.service import SEAL_TASK
from puente.db import unit_of_work
from puente.tasks import celery_app

# One run chains at most this many batches (one transaction each) and leaves the rest to
# the next run, so a backlog after an outage never holds one transaction for minutes.
MAX_BATCHES_PER_RUN = 20
# In embedded mode each request's run looks only from its own first row up; a sweep of
# the whole window (late commits, or rows a run skipped because another sealer held the
# lock) happens at most this often per process.
SWEEP_INTERVAL_SECONDS = 1.0


class _SweepClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last < SWEEP_INTERVAL_SECONDS:
                return False
            self._last = now
            return True


_sweeps = _SweepClock()


def seal_backlog(max_batches: int | None = MAX_BATCHES_PER_RUN, since_id: int | None = None) -> int:
    """Seal in committed batches until nothing is left (or `max_batches`); rows chained."""
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        with unit_of_work() as session:
            sealed = seal(session, since_id=since_id)
        total += sealed
        batches += 1
        if sealed < BATCH_SIZE:  # the last batch, or another sealer holds the lock
            break
    return total


@celery_app.task(name=SEAL_TASK, acks_late=True)
def seal_task(since_id: int | None = None) -> int:
    """Idempotent: a second run (or a redelivery after a crash) finds nothing new to chain.

    Beat sends no `since_id` (a full sweep); a request in embedded mode sends its first
    audit id, and the run still sweeps when the last sweep is a second old.
    """
    return seal_backlog(since_id=None if since_id is None or _sweeps.due() else since_id)
