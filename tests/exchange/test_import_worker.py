"""A `$import` survives its worker being killed: nothing lost, nothing stored twice.

Runs only with `PUENTE_TEST_BROKER_URL` (e.g. `redis://127.0.0.1:6379/15`). The kick-off
commits as a request does and its task goes to Redis; a real `puente worker` starts the
import and is SIGKILLed once some batches have committed. A second worker then gets the
same task from Redis itself: the message was never acknowledged (`acks_late`), and the
Redis transport hands an unacknowledged message on once `visibility_timeout` has passed
(set to a few seconds here through `PUENTE_BROKER_VISIBILITY_TIMEOUT`). Nothing re-sends
the task by hand.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from demo.generator import generate
from exchange import import_jobs
from exchange.models import ImportJob, StoredResource
from puente import tasks
from puente.auth import service as auth
from puente.db import session_factory
from tests.conftest import truncate_all
from tests.exchange.test_import_async import register_systems
from tests.exchange.workers import BROKER_URL, WAIT_SECONDS, Workers

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER_URL, reason="PUENTE_TEST_BROKER_URL is not set"),
]


@pytest.fixture
def clean(engine: Engine) -> Iterator[None]:
    yield
    truncate_all(engine)


def _job(job_id: str) -> ImportJob:
    with session_factory()() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job


def _stored_counts() -> collections.Counter[str]:
    with session_factory()() as session:
        rows = session.execute(
            select(StoredResource.res_type, func.count())
            .where(StoredResource.owner == "hgcj")
            .group_by(StoredResource.res_type)
        ).all()
    return collections.Counter(dict(rows))


def _kick_off_through_the_broker(
    records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Commit the job as the kick-off route does; its task goes to Redis after commit."""
    sender = Celery("puente-test", broker=BROKER_URL)
    sender.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    monkeypatch.setattr(
        tasks, "_send", lambda name, args: sender.send_task(name, args=args) and None
    )
    payload = "".join(json.dumps(r) + "\n" for r in records).encode()
    try:
        with session_factory()() as session:
            system = auth.find_system(session, "hgcj")
            assert system is not None
            job = import_jobs.kick_off(session, auth.system_caller(system), payload=payload)
            session.commit()
            return job.id
    finally:
        sender.close()


def test_a_killed_worker_loses_and_duplicates_nothing(
    clean: None, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_systems()
    before = _stored_counts()
    records = generate(patients_per_hospital=600, seed=3).records["hgcj"]
    assert len(records) > 6 * import_jobs.BATCH
    first = workers.start()
    job_id = _kick_off_through_the_broker(records, monkeypatch)

    deadline = time.monotonic() + WAIT_SECONDS
    workers.kill_once(first, lambda: _job(job_id).lines_done > 0, deadline)
    at_kill = _job(job_id)
    assert at_kill.status == import_jobs.RUNNING, workers.tail()
    assert 0 < at_kill.lines_done < len(records)

    workers.start()
    while _job(job_id).status != import_jobs.COMPLETED:
        assert time.monotonic() < deadline, workers.tail()
        time.sleep(0.2)

    done = _job(job_id)
    n = len(records)
    assert (done.lines_total, done.lines_done, done.read_count) == (n, n, n)
    # The batch in flight at the kill rolled back, so its lines were created afresh.
    assert (done.created_count, done.updated_count, done.unchanged_count) == (n, 0, 0)
    assert done.rejected_count == 0
    expected = collections.Counter(r["resourceType"] for r in records)
    assert _stored_counts() - before == expected
    with session_factory()() as session:
        versions = session.scalars(
            select(func.max(StoredResource.version)).where(StoredResource.owner == "hgcj")
        ).one()
    assert versions == 1  # no line was written twice
