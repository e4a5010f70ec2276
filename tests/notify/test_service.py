"""Queueing: rendering in the recipient's language, one message per idempotency key,
addresses that cannot inject headers, the backoff schedule (puente.notify.service)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from puente.notify import service
from puente.notify.errors import InvalidRecipient
from puente.notify.models import OutboxMessage, Status
from puente.tasks import pending

SUBJECT, BODY = "notify.test.subject", "notify.test.body"


def _queue(db: Session, key: str = "test:1", **overrides: object) -> OutboxMessage:
    arguments: dict[str, object] = {
        "idempotency_key": key,
        "kind": "puente.test",
        "recipient": "maria.lopez@example.org",
        "locale": "es-MX",
        "subject_key": SUBJECT,
        "body_key": BODY,
    }
    arguments.update(overrides)
    return service.queue(db, **arguments)  # type: ignore[arg-type]


def _count(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


@pytest.mark.parametrize(
    ("locale", "stored", "subject", "body_start", "footer_start"),
    [
        ("es-MX", "es_MX", "Mensaje de prueba de Puente", "Este es un mensaje", "Este mensaje fue"),
        ("es", "es_MX", "Mensaje de prueba de Puente", "Este es un mensaje", "Este mensaje fue"),
        ("en-US", "en_US", "Puente test message", "This is a test", "This message was"),
        ("fr-FR", "en_US", "Puente test message", "This is a test", "This message was"),
        (None, "en_US", "Puente test message", "This is a test", "This message was"),
    ],
)
def test_the_message_is_rendered_in_the_recipients_language(
    db: Session, locale: str | None, stored: str, subject: str, body_start: str, footer_start: str
) -> None:
    message = _queue(db, locale=locale)
    assert (message.locale, message.subject) == (stored, subject)
    text, _, footer = message.body.partition("\n\n-- \n")
    assert text.startswith(body_start)
    assert footer.startswith(footer_start)
    assert message.status == Status.QUEUED
    assert message.attempts == 0
    assert message.provider_message_id == service.message_id_for("test:1", "x@puente.localhost")


def test_delivery_is_asked_for_once_and_only_after_commit(db: Session) -> None:
    message = _queue(db)
    assert pending(db) == [(service.DELIVER_TASK, (message.id,))]


def test_the_same_idempotency_key_queues_one_message(db: Session) -> None:
    first = _queue(db, key="btg-notice:42")
    again = _queue(db, key="btg-notice:42")
    assert again.id == first.id
    assert _count(db) == 1
    assert pending(db) == [(service.DELIVER_TASK, (first.id,))]


def test_a_key_reused_for_another_message_is_refused(db: Session) -> None:
    _queue(db, key="btg-notice:42")
    with pytest.raises(ValueError, match="idempotency key"):
        _queue(db, key="btg-notice:42", recipient="someone.else@example.org")


@pytest.mark.parametrize(
    "address",
    [
        "maria.lopez@example.org\r\nBcc: all@example.org",
        "maria.lopez@example.org\nSubject: x",
        "Maria <maria.lopez@example.org>",
        "maria.lopez",
        "maria@localhost",
        "maría@example.org",
        "a" * 65 + "@example.org",
        "",
    ],
)
def test_an_address_that_cannot_receive_mail_is_refused(db: Session, address: str) -> None:
    with pytest.raises(InvalidRecipient) as refused:
        _queue(db, recipient=address)
    assert refused.value.status_code == 422
    assert refused.value.issues[0].params == {}  # the address is not echoed
    assert _count(db) == 0
    assert pending(db) == []


def test_a_missing_catalog_entry_or_parameter_is_refused_not_sent(db: Session) -> None:
    with pytest.raises(LookupError):
        _queue(db, subject_key="notify.no_such_subject")
    with pytest.raises(KeyError):
        _queue(db, body_key="notify.message_unknown")  # needs {id}
    assert _count(db) == 0


def test_parameters_cannot_break_the_subject_onto_two_lines() -> None:
    rendered = service.render(
        "en_US", subject_key="notify.message_sending", body_key=BODY,
        params={"id": "x\r\nBcc: all@example.org"},
    )  # fmt: skip
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    delays = [service.backoff_delay(n, base=60, cap=3600).total_seconds() for n in range(1, 9)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert service.backoff_delay(1000, base=60, cap=3600) == dt.timedelta(hours=1)


def test_the_message_id_is_derived_from_the_key_and_opaque() -> None:
    sender = "Puente <avisos@puente.example.org>"
    one = service.message_id_for("btg-notice:42", sender)
    assert one == service.message_id_for("btg-notice:42", sender)
    assert one != service.message_id_for("btg-notice:43", sender)
    assert re.fullmatch(r"<[0-9a-f]{32}@puente\.example\.org>", one)  # a digest, not the key


def test_a_claim_is_taken_once(db: Session) -> None:
    message = _queue(db)
    now = message.next_attempt_at + dt.timedelta(seconds=1)
    assert service.claim(db, message_id=message.id, token="a", now=now) is not None
    assert service.claim(db, message_id=message.id, token="b", now=now) is None
    assert (
        service.mark_sent(db, message_id=message.id, token="b", now=now, provider_message_id="x")
        is False
    )
    assert service.mark_sent(db, message_id=message.id, token="a", now=now, provider_message_id="x")


def test_a_message_not_due_yet_is_not_claimed(db: Session) -> None:
    message = _queue(db)
    early = message.next_attempt_at - dt.timedelta(seconds=1)
    assert service.claim(db, message_id=message.id, token="a", now=early) is None


@pytest.mark.parametrize(
    ("address", "masked"),
    [("maria.lopez@example.org", "m***@example.org"), ("x@y.org", "x***@y.org"), ("nope", "***")],
)
def test_addresses_are_masked_for_operators(address: str, masked: str) -> None:
    assert service.mask_address(address) == masked
