"""Delivery to a real SMTP server: once, in the recipient's language, retried when the
server says "later", never when it says "no", and never twice (puente.notify.tasks)."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from puente.db import utcnow
from puente.notify import service, tasks
from puente.notify.channels import Envelope, SmtpChannel
from puente.notify.models import OutboxMessage, Status
from puente.notify.tasks import Outcome, deliver_now, sweep
from tests.notify.conftest import DROP, Mailbox, free_port, run_cli

SUBJECT, BODY = "notify.test.subject", "notify.test.body"
ADDRESS = "maria.lopez@example.org"


def _queue(
    session: Session, *, key: str = "test:1", locale: str = "es-MX", commit: bool = False
) -> str:
    """Queue one message; with `commit`, the in-process task delivers it right away."""
    message = service.queue(
        session, idempotency_key=key, kind="puente.test", recipient=ADDRESS, locale=locale,
        subject_key=SUBJECT, body_key=BODY,
    )  # fmt: skip
    message_id = message.id
    if commit:
        session.commit()
    else:
        # Commit without running the task: the test runs each attempt itself.
        session.info.pop("puente_pending_tasks", None)
        session.commit()
    return message_id


def _row(session: Session, message_id: str) -> OutboxMessage:
    session.rollback()  # a fresh snapshot
    message = session.get(OutboxMessage, message_id, populate_existing=True)
    assert message is not None
    return message


def _make_due(session: Session, message_id: str) -> None:
    """Time passes: the backoff is over."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    )
    session.commit()


def _claimed_long_ago(session: Session, message_id: str) -> None:
    """Time passes: the worker holding the message is long gone."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(claimed_at=utcnow() - dt.timedelta(hours=1))
    )
    session.commit()


@pytest.mark.parametrize(
    ("locale", "subject", "body", "language"),
    [
        ("es-MX", "Mensaje de prueba de Puente", "Si puede leerlo", "es-MX"),
        ("en-US", "Puente test message", "If you can read it", "en-US"),
    ],
)
def test_a_queued_message_is_delivered_once_after_commit(
    committed: Session, smtp: Mailbox, locale: str, subject: str, body: str, language: str
) -> None:
    message_id = _queue(committed, locale=locale, commit=True)
    assert len(smtp.received) == 1
    received = smtp.received[0]
    assert received.mail_from == "avisos@puente.example.org"
    assert received.rcpt_tos == [ADDRESS]
    mail = received.message
    assert mail["Subject"] == subject
    assert mail["To"] == ADDRESS
    assert mail["From"] == "Puente <avisos@puente.example.org>"
    assert mail["Content-Language"] == language
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    sent_date = email.utils.parsedate_to_datetime(mail["Date"])
    assert abs((sent_date - utcnow()).total_seconds()) < 60
    text = mail.get_content()
    assert body in text
    for header in ("Cc", "Bcc", "Reply-To", "X-Mailer"):
        assert header not in mail
    # 7-bit clean and within RFC 5322's line limit, whatever relay carries it.
    assert received.raw.isascii()
    assert max(len(line) for line in received.raw.splitlines()) <= 78
    stored = _row(committed, message_id)
    assert stored.status == Status.SENT
    assert stored.attempts == 1
    assert stored.sent_at is not None
    assert mail["Message-ID"].strip() == stored.provider_message_id
    assert stored.provider_message_id == service.message_id_for("test:1", mail["From"])
    assert stored.last_error is None


def test_spanish_text_survives_the_wire(committed: Session, smtp: Mailbox) -> None:
    _queue(committed, locale="es-MX", commit=True)
    text = smtp.received[0].message.get_content()
    assert "automáticamente" in text
    assert "expedientes clínicos" in text


def test_running_the_task_twice_sends_once(committed: Session, smtp: Mailbox) -> None:
    message_id = _queue(committed)
    assert deliver_now(message_id) is Outcome.SENT
    assert deliver_now(message_id) is Outcome.SKIPPED
    assert tasks.deliver.apply(args=(message_id,)).get() == "skipped"
    assert len(smtp.received) == 1


def test_queueing_the_same_event_twice_sends_once(committed: Session, smtp: Mailbox) -> None:
    _queue(committed, key="btg-notice:7", commit=True)
    _queue(committed, key="btg-notice:7", commit=True)
    assert len(smtp.received) == 1


def test_nothing_is_sent_for_an_event_that_rolled_back(committed: Session, smtp: Mailbox) -> None:
    service.queue(
        committed, idempotency_key="k", kind="puente.test", recipient=ADDRESS, locale="es",
        subject_key=SUBJECT, body_key=BODY,
    )  # fmt: skip
    committed.rollback()
    assert sweep().requeued == 0
    assert smtp.received == []


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_transient_refusal_is_retried_after_the_backoff(
    committed: Session, smtp: Mailbox, stage: str
) -> None:
    replies = smtp.rcpt_replies if stage == "rcpt" else smtp.data_replies
    replies.append("451 4.3.0 Try again later")
    message_id = _queue(committed)
    before = utcnow()
    assert deliver_now(message_id) is Outcome.RETRY
    waiting = _row(committed, message_id)
    assert waiting.status == Status.QUEUED
    assert waiting.attempts == 1
    assert waiting.last_error == f"smtp {stage} 451 4.3.0"
    delay = (waiting.next_attempt_at - before).total_seconds()
    assert 59 <= delay <= 62  # PUENTE_NOTIFY_RETRY_DELAY, 60 s by default
    assert deliver_now(message_id) is Outcome.SKIPPED  # not due yet
    assert smtp.received == []
    _make_due(committed, message_id)
    assert deliver_now(message_id) is Outcome.SENT
    sent = _row(committed, message_id)
    assert (sent.status, sent.attempts, sent.last_error) == (Status.SENT, 2, None)
    assert len(smtp.received) == 1


def test_the_sweep_delivers_due_retries(committed: Session, smtp: Mailbox) -> None:
    smtp.data_replies.append("421 4.7.0 Too busy")
    message_id = _queue(committed)
    assert deliver_now(message_id) is Outcome.RETRY
    assert sweep().requeued == 0
    assert smtp.received == []  # not due: the sweep leaves it
    _make_due(committed, message_id)
    sweep()
    assert len(smtp.received) == 1
    assert _row(committed, message_id).status == Status.SENT


@pytest.mark.parametrize(
    ("stage", "reply", "error"),
    [
        ("rcpt", f"550 5.1.1 <{ADDRESS}>: Recipient address rejected", "smtp rcpt 550 5.1.1"),
        ("data", "554 5.7.1 Message refused", "smtp data 554 5.7.1"),
    ],
)
def test_a_permanent_refusal_is_not_retried(
    committed: Session, smtp: Mailbox, stage: str, reply: str, error: str
) -> None:
    (smtp.rcpt_replies if stage == "rcpt" else smtp.data_replies).append(reply)
    message_id = _queue(committed)
    assert deliver_now(message_id) is Outcome.FAILED
    failed = _row(committed, message_id)
    assert (failed.status, failed.attempts, failed.last_error) == (Status.FAILED, 1, error)
    assert ADDRESS not in (failed.last_error or "")  # the server's text is not kept
    _make_due(committed, message_id)
    sweep()
    assert deliver_now(message_id) is Outcome.SKIPPED
    assert smtp.received == []


def test_out_of_attempts_the_message_fails(
    committed: Session, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from puente.settings import get_settings

    monkeypatch.setenv("PUENTE_NOTIFY_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    smtp.data_replies.extend(["451 4.3.0 later", "451 4.3.0 later"])
    message_id = _queue(committed)
    assert deliver_now(message_id) is Outcome.RETRY
    _make_due(committed, message_id)
    assert deliver_now(message_id) is Outcome.FAILED
    failed = _row(committed, message_id)
    assert (failed.status, failed.attempts) == (Status.FAILED, 2)
    assert smtp.received == []


def test_an_unreachable_server_is_retried(
    committed: Session, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from puente.settings import get_settings

    monkeypatch.setenv("PUENTE_SMTP_PORT", str(free_port()))  # nobody listens there
    get_settings.cache_clear()
    message_id = _queue(committed)
    assert deliver_now(message_id) is Outcome.RETRY
    assert _row(committed, message_id).last_error == "connect ConnectionRefusedError"


def test_a_crash_after_the_server_accepted_does_not_resend(
    committed: Session, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies between the server's 250 and our `sent`: the sweep finds the
    message handed over, so it is failed for an operator rather than sent again; the
    operator's retry carries the same Message-ID."""
    message_id = _queue(committed)

    def worker_dies(*_args: object, **_kwargs: object) -> bool:
        raise SystemExit("killed")

    monkeypatch.setattr(service, "mark_sent", worker_dies)
    with pytest.raises(SystemExit):
        deliver_now(message_id)
    monkeypatch.undo()
    assert len(smtp.received) == 1
    stuck = _row(committed, message_id)
    assert stuck.status == Status.SENDING
    assert stuck.handed_over_at is not None
    assert deliver_now(message_id) is Outcome.SKIPPED  # a redelivered task
    assert sweep().failed == 0  # the claim is still young: maybe the worker is slow
    _claimed_long_ago(committed, message_id)
    assert sweep().failed == 1
    _make_due(committed, message_id)
    sweep()
    assert len(smtp.received) == 1  # never resent on its own
    failed = _row(committed, message_id)
    assert failed.status == Status.FAILED
    assert failed.last_error == "outcome unknown: worker lost"
    code, output = run_cli("outbox", "retry", message_id)
    assert code == 0, output
    assert "may have reached the recipient" in output
    assert len(smtp.received) == 2
    assert smtp.received[1].message["Message-ID"] == smtp.received[0].message["Message-ID"]


def test_a_connection_lost_after_data_is_not_resent(committed: Session, smtp: Mailbox) -> None:
    smtp.data_replies.append(DROP)
    message_id = _queue(committed)
    assert deliver_now(message_id) is Outcome.UNKNOWN
    failed = _row(committed, message_id)
    assert failed.status == Status.FAILED
    assert failed.last_error == "outcome unknown: SMTPServerDisconnected"
    _make_due(committed, message_id)
    sweep()
    assert len(smtp.received) == 1


def test_a_crash_before_hand_over_is_retried(
    committed: Session, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after claiming, before the server saw the message: certainly not
    delivered, so the sweep queues it again."""
    message_id = _queue(committed)

    class DiesBeforeSending:
        def send(self, envelope: Envelope, *, handover: Callable[[], None]) -> str:
            raise SystemExit("killed")

    monkeypatch.setattr(tasks, "channel_for", lambda _medium, _settings: DiesBeforeSending())
    with pytest.raises(SystemExit):
        deliver_now(message_id)
    monkeypatch.undo()
    stuck = _row(committed, message_id)
    assert (stuck.status, stuck.handed_over_at) == (Status.SENDING, None)
    _claimed_long_ago(committed, message_id)
    settled = sweep()
    assert (settled.requeued, settled.failed) == (1, 0)
    assert _row(committed, message_id).status == Status.QUEUED  # after a backoff, in case
    _make_due(committed, message_id)  # the message itself kills workers
    sweep()
    assert len(smtp.received) == 1
    sent = _row(committed, message_id)
    assert (sent.status, sent.attempts) == (Status.SENT, 2)


def test_a_slow_worker_given_up_for_lost_still_reports_success(
    committed: Session, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep marks a message "outcome unknown" while its worker is still talking to
    a slow relay; when the relay accepts, the worker records `sent` after all."""
    message_id = _queue(committed)
    real_send = SmtpChannel.send

    def slow_send(self: SmtpChannel, envelope: Envelope, *, handover: Callable[[], None]) -> str:
        def handover_then_stall() -> None:
            handover()
            _claimed_long_ago(committed, message_id)
            assert sweep().failed == 1  # meanwhile, the sweep gives up on it

        return real_send(self, envelope, handover=handover_then_stall)

    monkeypatch.setattr(SmtpChannel, "send", slow_send)
    assert deliver_now(message_id) is Outcome.SENT
    sent = _row(committed, message_id)
    assert (sent.status, sent.last_error) == (Status.SENT, None)
    assert len(smtp.received) == 1


def test_a_slow_worker_whose_message_was_requeued_does_not_send_it(
    committed: Session, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before hand-over, the sweep may queue a slow worker's message again; the worker
    then finds its claim gone at hand-over and stops, so only the new attempt sends."""
    message_id = _queue(committed)
    real_send = SmtpChannel.send

    def slow_send(self: SmtpChannel, envelope: Envelope, *, handover: Callable[[], None]) -> str:
        _claimed_long_ago(committed, message_id)
        assert sweep().requeued == 1
        return real_send(self, envelope, handover=handover)

    monkeypatch.setattr(SmtpChannel, "send", slow_send)
    assert deliver_now(message_id) is Outcome.SKIPPED
    monkeypatch.undo()
    assert smtp.received == []
    assert _row(committed, message_id).status == Status.QUEUED
    _make_due(committed, message_id)
    assert deliver_now(message_id) is Outcome.SENT
    assert len(smtp.received) == 1


def test_without_a_broker_a_delivery_also_sends_due_retries(
    committed: Session, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No beat runs in the embedded mode: the next notice's delivery sends what is due."""
    smtp.data_replies.append("451 4.3.0 later")
    waiting = _queue(committed, key="first")
    assert deliver_now(waiting) is Outcome.RETRY
    _make_due(committed, waiting)
    monkeypatch.setattr(tasks, "_embedded_sweeps", tasks._Clock(0))
    _queue(committed, key="second", commit=True)
    assert len(smtp.received) == 2
    assert _row(committed, waiting).status == Status.SENT


def test_beat_sweeps_the_outbox() -> None:
    from puente.tasks import celery_app

    entries = celery_app.conf.beat_schedule.values()
    assert {"task": service.SWEEP_TASK, "schedule": 30.0} in entries


def test_the_sweep_command_settles_stuck_messages(committed: Session, smtp: Mailbox) -> None:
    smtp.data_replies.append("451 4.3.0 later")
    message_id = _queue(committed)
    assert deliver_now(message_id) is Outcome.RETRY
    _make_due(committed, message_id)
    code, output = run_cli("outbox", "sweep")
    assert code == 0, output
    assert output.strip() == "requeued 0, failed 0 stuck messages"
    assert len(smtp.received) == 1


def test_the_text_of_old_sent_messages_is_blanked(committed: Session, smtp: Mailbox) -> None:
    recent = _queue(committed, key="recent", commit=True)
    old = _queue(committed, key="old", commit=True)
    committed.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == old)
        .values(sent_at=utcnow() - dt.timedelta(days=31))  # PUENTE_NOTIFY_RETENTION_DAYS: 30
    )
    committed.commit()
    sweep()
    blanked, kept = _row(committed, old), _row(committed, recent)
    assert (blanked.subject, blanked.body, blanked.status) == ("", "", Status.SENT)
    assert kept.body.startswith("Este es un mensaje")
    _queue(committed, key="old", commit=True)  # the event still cannot queue it again
    assert len(smtp.received) == 2
