"""Delivery through a real broker and a real `puente worker`, to the local SMTP server.

Runs only with `PUENTE_TEST_BROKER_URL` (e.g. `redis://127.0.0.1:6379/15`). The broker
delivers at least once: the task is sent twice, as a redelivery would, and the message
still arrives once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy.orm import Session

from puente.notify import service
from puente.notify.models import OutboxMessage, Status
from tests.live import start_worker, stop
from tests.notify.conftest import Mailbox

BROKER_URL = os.environ.get("PUENTE_TEST_BROKER_URL")
WAIT_SECONDS = 30

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER_URL, reason="PUENTE_TEST_BROKER_URL is not set"),
]


@pytest.fixture
def worker(database_url: str, smtp: Mailbox, tmp_path: Path) -> Iterator[Path]:
    """A worker whose settings (the environment `smtp` set) point at the local server."""
    assert BROKER_URL is not None
    log_path = tmp_path / "worker.log"
    env = os.environ | {"PUENTE_BROKER_URL": BROKER_URL, "PUENTE_DATABASE_URL": database_url}
    process = start_worker(env, log_path)
    try:
        yield log_path
    finally:
        stop(process)


def test_the_worker_delivers_once_though_the_task_comes_twice(
    committed: Session, smtp: Mailbox, worker: Path
) -> None:
    message = service.queue(
        committed, idempotency_key="k", kind="puente.test", recipient="maria@example.org",
        locale="es-MX", subject_key="notify.test.subject", body_key="notify.test.body",
    )  # fmt: skip
    message_id = message.id
    committed.info.pop("puente_pending_tasks", None)  # sent below, through the broker
    committed.commit()
    sender = Celery("puente-test", broker=BROKER_URL)
    sender.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    try:
        sender.send_task(service.DELIVER_TASK, args=[message_id])
        sender.send_task(service.DELIVER_TASK, args=[message_id])
    finally:
        sender.close()
    deadline = time.monotonic() + WAIT_SECONDS
    status = Status.QUEUED.value
    while status != Status.SENT and time.monotonic() < deadline:
        time.sleep(0.2)
        committed.rollback()
        row = committed.get(OutboxMessage, message_id, populate_existing=True)
        assert row is not None
        status = row.status
    assert status == Status.SENT, worker.read_text()[-2000:]
    time.sleep(1)  # the second task has had its turn
    assert len(smtp.received) == 1
    assert smtp.received[0].message["Subject"] == "Mensaje de prueba de Puente"
