"""`puente outbox`: operators see status and codes, never an address in full, a subject or
a body; a sent message cannot be sent again (puente.cli.outbox)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.audit.models import AuditEntry
from puente.db import session_factory
from puente.notify import service
from puente.notify.models import OutboxMessage, Status
from tests.notify.conftest import Mailbox, run_cli

ADDRESS = "maria.lopez@example.org"


def _queue(session: Session, key: str, *, locale: str = "es-MX") -> str:
    message = service.queue(
        session, idempotency_key=key, kind="puente.test", recipient=ADDRESS, locale=locale,
        subject_key="notify.test.subject", body_key="notify.test.body",
    )  # fmt: skip
    message_id = message.id
    session.commit()
    return message_id


def test_list_masks_the_address_and_shows_no_text(committed: Session, smtp: Mailbox) -> None:
    smtp.rcpt_replies.append("550 5.1.1 no such user")
    failed = _queue(committed, "one")
    sent = _queue(committed, "two")
    code, output = run_cli("outbox", "list")
    assert code == 0, output
    assert "m***@example.org" in output
    assert ADDRESS not in output
    assert "Mensaje de prueba" not in output
    lines = {line.split("\t")[0]: line.split("\t") for line in output.splitlines()[1:]}
    assert lines[failed][1:3] == ["failed", "puente.test"]
    assert lines[failed][-1] == "smtp rcpt 550 5.1.1"
    assert lines[sent][1] == "sent"
    code, output = run_cli("outbox", "list", "--status", "failed")
    assert [line.split("\t")[0] for line in output.splitlines()[1:]] == [failed]


def test_list_refuses_an_unknown_status(committed: Session) -> None:
    code, output = run_cli("outbox", "list", "--status", "lost")
    assert code == 2
    assert "queued, sending, sent, failed" in output


def test_retry_delivers_a_failed_message(committed: Session, smtp: Mailbox) -> None:
    smtp.rcpt_replies.append("550 5.2.2 mailbox full")
    message_id = _queue(committed, "one")
    assert smtp.received == []
    code, output = run_cli("outbox", "retry", message_id)
    assert code == 0, output
    assert output.strip() == f"{message_id}\tsent\t-"
    assert len(smtp.received) == 1
    committed.rollback()
    retried = committed.scalars(
        select(AuditEntry).where(AuditEntry.subtype == "notification-retry")
    ).all()
    assert [(entry.agent or "")[:4] for entry in retried] == ["cli:"]
    assert retried[0].outcome_detail == f"outbox message {message_id}"


def test_a_sent_message_is_never_retried(committed: Session, smtp: Mailbox) -> None:
    message_id = _queue(committed, "one")
    code, output = run_cli("outbox", "retry", message_id)
    assert code == 1
    assert "never sent twice" in output
    assert len(smtp.received) == 1


def test_retry_of_an_unknown_id_fails(committed: Session) -> None:
    code, output = run_cli("outbox", "retry", "no-such-id")
    assert code == 1
    assert "no-such-id" in output


def test_send_test_checks_the_smtp_settings(committed: Session, smtp: Mailbox) -> None:
    code, output = run_cli("outbox", "send-test", "ops@example.org", "--locale", "es_MX")
    assert code == 0, output
    assert output.strip().split("\t")[1] == "sent"
    assert smtp.received[0].message["Subject"] == "Mensaje de prueba de Puente"
    smtp.rcpt_replies.append("550 5.1.1 no such user")
    code, output = run_cli("outbox", "send-test", "nobody@example.org")
    assert code == 1
    assert output.strip().split("\t")[1:] == ["failed", "smtp rcpt 550 5.1.1"]
    code, output = run_cli("outbox", "send-test", "not an address")
    assert code == 1
    assert "cannot receive messages" in output


def test_two_transactions_queueing_one_event_make_one_message(
    committed: Session, mail_dir: Path
) -> None:
    """The second waits for the first to commit, then finds its message (no error)."""
    first = session_factory()()
    second = session_factory()()
    try:
        one = service.queue(
            first, idempotency_key="btg-notice:9", kind="puente.test", recipient=ADDRESS,
            locale="es", subject_key="notify.test.subject", body_key="notify.test.body",
        )  # fmt: skip
        results: list[str] = []

        def queue_again() -> None:
            message = service.queue(
                second, idempotency_key="btg-notice:9", kind="puente.test", recipient=ADDRESS,
                locale="es", subject_key="notify.test.subject", body_key="notify.test.body",
            )  # fmt: skip
            results.append(message.id)
            second.commit()

        racer = threading.Thread(target=queue_again)
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive()  # waiting for the first transaction
        first.commit()
        racer.join(timeout=30)
        assert results == [one.id]
    finally:
        first.close()
        second.close()
    count = committed.scalar(select(func.count()).select_from(OutboxMessage))
    assert count == 1
    stored = committed.get(OutboxMessage, one.id)
    assert stored is not None
    assert stored.status == Status.SENT
