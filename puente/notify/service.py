"""Queue messages inside the caller's transaction; claim, settle and retry them.

Services flush, never commit: `queue` adds a row to the caller's transaction and asks for
`deliver` once it commits (nothing is sent for an event that rolled back). The delivery
steps below each run in a transaction of their own, opened by puente.notify.tasks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Mapping
from email.utils import parseaddr

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from puente.audit import service as audit
from puente.db import utcnow
from puente.notify.channels import EMAIL, Envelope
from puente.notify.errors import AlreadySent, BeingSent, InvalidRecipient, MessageNotFound
from puente.notify.models import OutboxMessage, Status
from puente.settings import get_settings
from puente.tasks import enqueue
from translation.i18n import N_, match_locale, translations

DELIVER_TASK = "puente.notify.deliver"
SWEEP_TASK = "puente.notify.sweep"
FOOTER_KEY = N_("notify.footer")
SUBJECT_MAX = 998
KEY_MAX = 200
# RFC 5321 section 4.5.3.1: 64 octets of local part, 254 in all. ASCII only: Puente does
# not speak SMTPUTF8, and a CR or LF here would let an address add headers.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


@dataclasses.dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def render(
    locale: str, *, subject_key: str, body_key: str, params: Mapping[str, object]
) -> Rendered:
    """Subject and body in `locale`, with the standard footer. A key missing from the
    catalog, or a placeholder without a value, is a programming error: refuse rather than
    send a patient `notify.x.body` or a literal `{name}`."""
    catalog = translations(locale)
    texts = []
    for key in (subject_key, body_key, FOOTER_KEY):
        text = catalog.gettext(key)
        if text == key:
            raise LookupError(f"no catalog entry for {key}")
        texts.append(text.format_map(dict(params)))
    # One header line, whatever the parameters held, and within the column.
    subject = " ".join(texts[0].split())[:SUBJECT_MAX]
    return Rendered(subject=subject, body=f"{texts[1].rstrip()}\n\n-- \n{texts[2].rstrip()}\n")


def message_id_for(idempotency_key: str, sender: str) -> str:
    """The Message-ID of every attempt at one logical message: the same key gives the
    same id, so a mail system that already holds the message can tell a resend apart."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "puente.localhost"
    return f"<{digest}@{domain}>"


def queue(
    session: Session,
    *,
    idempotency_key: str,
    kind: str,
    recipient: str,
    locale: str | None,
    subject_key: str,
    body_key: str,
    params: Mapping[str, object] | None = None,
    channel: str = EMAIL,
) -> OutboxMessage:
    """Add a message to the caller's transaction; `deliver` runs after it commits.

    The same `idempotency_key` queued again (a retried request, a redelivered task)
    returns the message already there and sends nothing more.
    """
    if not 0 < len(idempotency_key) <= KEY_MAX:
        raise ValueError(f"an idempotency key has 1 to {KEY_MAX} characters")
    address = recipient.strip()
    if not _ADDRESS.match(address):
        raise InvalidRecipient()
    existing = _by_key(session, idempotency_key)
    if existing is not None:
        return _same_message(existing, kind=kind, recipient=address)
    settings = get_settings()
    language = match_locale(locale) or settings.default_locale
    text = render(language, subject_key=subject_key, body_key=body_key, params=params or {})
    message_id = str(uuid.uuid4())
    now = utcnow()
    row = {
        "id": message_id,
        "idempotency_key": idempotency_key,
        "kind": kind,
        "channel": channel,
        "recipient": address,
        "locale": language,
        "subject": text.subject,
        "body": text.body,
        "status": Status.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": now,
        "provider_message_id": message_id_for(idempotency_key, settings.mail_from),
        "created_at": now,
        "updated_at": now,
    }
    if not _insert_unless_queued(session, row):
        raced = _by_key(session, idempotency_key)
        assert raced is not None
        return _same_message(raced, kind=kind, recipient=address)
    message = session.get(OutboxMessage, message_id)
    assert message is not None
    enqueue(session, DELIVER_TASK, message.id)
    return message


def _insert_unless_queued(session: Session, row: dict[str, object]) -> bool:
    """Insert the row, or nothing if its key is taken. ON CONFLICT DO NOTHING rather than
    a savepoint: when another transaction is queueing the same key, PostgreSQL waits for
    it and then inserts nothing, and SQLite's driver would turn a savepoint taken before
    any write into a commit of its own."""
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    inserted = session.scalar(
        dialect_insert(OutboxMessage)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage.id)
    )
    return inserted is not None


def _by_key(session: Session, idempotency_key: str) -> OutboxMessage | None:
    return session.scalar(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
    )


def _same_message(existing: OutboxMessage, *, kind: str, recipient: str) -> OutboxMessage:
    if existing.kind != kind or existing.recipient != recipient:
        # Two different messages under one key would silently drop the second.
        raise ValueError(f"idempotency key reused for another message ({kind})")
    return existing


def backoff_delay(attempts: int, *, base: int, cap: int) -> dt.timedelta:
    """Wait after the `attempts`-th failed attempt: base, 2 x base, 4 x base... capped.
    No jitter: notices are few, and retries leave in the sweep's batches (every 30 s)."""
    exponent = min(max(attempts - 1, 0), 30)
    return dt.timedelta(seconds=min(base * 2**exponent, cap))


def claim(session: Session, *, message_id: str, token: str, now: dt.datetime) -> Envelope | None:
    """Take a due queued message for one attempt, atomically: of two workers given the
    same id, one UPDATE matches and the other finds nothing (a sent, failed, sending or
    not-yet-due message is never claimed)."""
    claimed = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.status == Status.QUEUED.value,
            OutboxMessage.next_attempt_at <= now,
        )
        .values(
            status=Status.SENDING.value,
            attempts=OutboxMessage.attempts + 1,
            claim_token=token,
            claimed_at=now,
            handed_over_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    message = session.get(OutboxMessage, message_id, populate_existing=True)
    assert message is not None
    return Envelope(
        message_id=message.id,
        kind=message.kind,
        medium=message.channel,
        recipient=message.recipient,
        locale=message.locale,
        subject=message.subject,
        body=message.body,
        provider_message_id=message.provider_message_id or "",
    )


def _settle(
    session: Session,
    *,
    message_id: str,
    token: str,
    now: dt.datetime,
    statuses: tuple[Status, ...] = (Status.SENDING,),
    **values: object,
) -> bool:
    """Change a message this claim still holds; False if the claim was lost."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.status.in_([status.value for status in statuses]),
            OutboxMessage.claim_token == token,
        )
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def mark_handed_over(session: Session, *, message_id: str, token: str, now: dt.datetime) -> bool:
    return _settle(session, message_id=message_id, token=token, now=now, handed_over_at=now)


def mark_sent(
    session: Session, *, message_id: str, token: str, now: dt.datetime, provider_message_id: str
) -> bool:
    """Sent. Also after the sweep gave up on a slow worker ("outcome unknown", which keeps
    the claim token for this): the worker now knows, and says so."""
    return _settle(
        session,
        message_id=message_id,
        token=token,
        now=now,
        statuses=(Status.SENDING, Status.FAILED),
        status=Status.SENT.value,
        sent_at=now,
        provider_message_id=provider_message_id,
        last_error=None,
        claim_token=None,
    )


def mark_attempt_failed(
    session: Session,
    *,
    message_id: str,
    token: str,
    now: dt.datetime,
    reason: str,
    permanent: bool,
) -> Status | None:
    """After an attempt that certainly did not deliver: queue the next one after the
    backoff, or fail for good (refused, or out of attempts). None if the claim was lost."""
    settings = get_settings()
    attempts = session.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == message_id))
    if attempts is None:
        return None
    if permanent or attempts >= settings.notify_max_attempts:
        status, next_at = Status.FAILED, now
    else:
        delay = backoff_delay(
            attempts, base=settings.notify_retry_delay, cap=settings.notify_retry_max_delay
        )
        status, next_at = Status.QUEUED, now + delay
    settled = _settle(
        session,
        message_id=message_id,
        token=token,
        now=now,
        status=status.value,
        next_attempt_at=next_at,
        last_error=reason[:128],
        claim_token=None,
    )
    return status if settled else None


def mark_outcome_unknown(
    session: Session, *, message_id: str, token: str, now: dt.datetime, reason: str
) -> bool:
    """The provider may hold the message: fail it for an operator to decide (at most once).
    The claim token stays, so that a worker thought dead can still report success."""
    return _settle(
        session,
        message_id=message_id,
        token=token,
        now=now,
        status=Status.FAILED.value,
        last_error=f"outcome unknown: {reason}"[:128],
    )


def due(session: Session, *, now: dt.datetime, limit: int) -> list[str]:
    """Queued messages whose attempt is due, oldest first."""
    return list(
        session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == Status.QUEUED.value, OutboxMessage.next_attempt_at <= now
            )
            .order_by(OutboxMessage.next_attempt_at)
            .limit(limit)
        )
    )


@dataclasses.dataclass(frozen=True)
class Settled:
    requeued: int = 0
    failed: int = 0


def settle_stuck(session: Session, *, now: dt.datetime) -> Settled:
    """Messages left `sending` by a worker that died (claimed longer ago than the claim
    timeout). Not yet handed over: certainly not delivered, so queued again (an attempt
    spent). Handed over: maybe delivered, so failed for an operator, never resent."""
    settings = get_settings()
    cutoff = now - dt.timedelta(seconds=settings.notify_claim_timeout)
    stuck = session.execute(
        select(OutboxMessage.id, OutboxMessage.claim_token, OutboxMessage.handed_over_at).where(
            OutboxMessage.status == Status.SENDING.value, OutboxMessage.claimed_at < cutoff
        )
    ).all()
    requeued = failed = 0
    for message_id, claim_token, handed_over_at in stuck:
        token = claim_token or ""
        if handed_over_at is not None:
            failed += mark_outcome_unknown(
                session, message_id=message_id, token=token, now=now, reason="worker lost"
            )
            continue
        status = mark_attempt_failed(
            session, message_id=message_id, token=token, now=now, reason="worker lost",
            permanent=False,
        )  # fmt: skip
        if status is Status.QUEUED:
            requeued += 1
        elif status is Status.FAILED:
            failed += 1
    return Settled(requeued=requeued, failed=failed)


REDACT_BATCH = 500


def redact_sent(session: Session, *, now: dt.datetime) -> int:
    """Blank the subject and body of messages sent more than the retention ago (a batch
    per call): the recipient has them; Puente keeps no copy of what they said."""
    cutoff = now - dt.timedelta(days=get_settings().notify_retention_days)
    batch = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == Status.SENT.value,
            OutboxMessage.sent_at < cutoff,
            OutboxMessage.body != "",
        )
        .limit(REDACT_BATCH)
    )
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(batch.scalar_subquery()))
        .values(subject="", body="", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def retry(
    session: Session, *, message_id: str, actor: str, now: dt.datetime | None = None
) -> OutboxMessage:
    """An operator's retry of a failed (or waiting) message: due now, attempts counted
    afresh; `deliver` runs after commit. A sent message is never sent again. Audited:
    it may send a patient's notice a second time."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise MessageNotFound(id=message_id)
    if message.status == Status.SENT.value:
        raise AlreadySent(id=message_id)
    if message.status == Status.SENDING.value:
        raise BeingSent(id=message_id)
    message.status = Status.QUEUED.value
    message.attempts = 0
    message.next_attempt_at = now or utcnow()
    message.claim_token = None
    session.flush()
    audit.append(
        session,
        event_type="security-admin",
        subtype="notification-retry",
        action="E",
        agent=actor,
        outcome_detail=f"outbox message {message.id}",
    )
    enqueue(session, DELIVER_TASK, message.id)
    return message


def list_messages(
    session: Session, *, status: Status | None = None, limit: int = 50
) -> list[OutboxMessage]:
    """Newest first, for operators."""
    query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(OutboxMessage.status == status.value)
    return list(session.scalars(query))


def mask_address(address: str) -> str:
    """`m***@example.org`: enough for an operator to tell messages apart, not to read."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"
