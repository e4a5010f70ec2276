"""The audit sealer proven end to end on a real broker and a real `puente worker`.

Runs only with `PUENTE_TEST_BROKER_URL` (e.g. `redis://127.0.0.1:6379/15`): rows are
committed as a request with a broker configured commits them (nothing is sealed
in-process), `puente.audit.seal` goes through the broker, and a worker process chains them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.audit import service
from puente.audit.models import AuditChain
from puente.audit.verify import verify
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from puente.settings import get_settings
from puente.tasks import pending
from tests.live import start_worker, stop

BROKER_URL = os.environ.get("PUENTE_TEST_BROKER_URL")
WAIT_SECONDS = 30

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER_URL, reason="PUENTE_TEST_BROKER_URL is not set"),
]


@pytest.fixture
def worker(database_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    assert BROKER_URL is not None
    env = os.environ | {"PUENTE_BROKER_URL": BROKER_URL, "PUENTE_DATABASE_URL": database_url}
    process = start_worker(env, tmp_path / "worker.log")
    try:
        yield process
    finally:
        stop(process)


def _append_with_broker(session: Session, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Commit rows as the API does when a broker is configured: no in-process seal."""
    monkeypatch.setenv("PUENTE_BROKER_URL", str(BROKER_URL))
    get_settings.cache_clear()
    try:
        caller = Caller("hgcj-client", Role.SYSTEM, "hgcj", "MX")
        for _ in range(count):
            service.append(
                session, event_type="rest", subtype="read", action="R", caller=caller,
                entities=["Organization/hgcj"], source_ip="127.0.0.1",
            )  # fmt: skip
        assert pending(session) == []
        session.commit()
    finally:
        monkeypatch.delenv("PUENTE_BROKER_URL")
        get_settings.cache_clear()


def _sealed(session: Session) -> int:
    session.rollback()  # a fresh snapshot
    return int(session.scalar(select(func.count()).select_from(AuditChain)) or 0)


def test_worker_seals_through_the_broker(
    committed: Session,
    worker: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _append_with_broker(committed, monkeypatch, 5)
    assert _sealed(committed) == 0
    sender = Celery("puente-test", broker=BROKER_URL)
    sender.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    try:
        sender.send_task("puente.audit.seal")
        deadline = time.monotonic() + WAIT_SECONDS
        while _sealed(committed) < 5 and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.2)
        assert _sealed(committed) == 5, (tmp_path / "worker.log").read_text()[-2000:]
        sender.send_task("puente.audit.seal")  # idempotent: a second run seals nothing new
        time.sleep(1)
        assert _sealed(committed) == 5
    finally:
        sender.close()
    report = verify(committed)
    assert report.ok
    assert (report.checked, report.pending) == (5, 0)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
