"""The outbox table: one row per logical message, from queued to sent or failed.

A row is written in the transaction of the event it tells about (a break-the-glass grant,
a booking), so a message exists if and only if its event does. The subject and body are
rendered in the recipient's language when queued and may carry PHI: they never leave this
table except towards the recipient (no logs, no CLI output, no error text).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from puente.db import Base, UTCDateTime, utcnow


class Status(enum.StrEnum):
    QUEUED = "queued"  # waiting for its (next) attempt at next_attempt_at
    SENDING = "sending"  # claimed by one worker (claim_token); see notify.tasks
    SENT = "sent"
    FAILED = "failed"  # refused, out of attempts, or outcome unknown: operators look


def _new_id() -> str:
    return str(uuid.uuid4())


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    __table_args__ = (
        # The sweep: due queued rows, stuck sending rows. Operators: by status, newest first.
        Index("ix_outbox_message_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_message_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    # One logical message, one key ("btg-notice:<grant id>"): queueing it again is a no-op.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))  # the purpose, e.g. "consent.btg_notice"
    channel: Mapped[str] = mapped_column(String(16))  # the medium: "email"
    recipient: Mapped[str] = mapped_column(String(320))  # RFC 5321 path limit
    locale: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(998))  # RFC 5322 line limit
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The current claim: who holds the row, since when, and whether the message was
    # already handed to the provider (after that, a crash leaves the outcome unknown).
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    handed_over_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A reply code or an exception class name, never a provider's text (it may echo the
    # address or the content).
    last_error: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The Message-ID header (for email), derived from the idempotency key.
    provider_message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
