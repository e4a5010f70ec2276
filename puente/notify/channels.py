"""How a message leaves: the `Channel` protocol, SMTP, and a recording channel.

A channel tells the outbox three things apart, because they decide whether a message may be
tried again (see puente.notify.tasks):
- it returned: the provider accepted the message;
- it raised `DeliveryFailure`: the provider certainly did not accept it (`permanent` when
  trying again cannot help, e.g. 550 mailbox unknown);
- it raised anything else: after `handover()` was called, nobody knows.
A channel calls `handover()` once, right before the step after which the provider may
hold the message (for SMTP, the DATA command); everything before it is safe to repeat.
"""

from __future__ import annotations

import email.policy
import logging
import os
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Protocol

from puente.db import utcnow
from puente.settings import Settings
from translation.i18n import bcp47

log = logging.getLogger("puente.notify")
EMAIL = "email"
_ENHANCED_STATUS = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Envelope:
    """What a channel needs of an outbox row; `message_id` is the row's id."""

    message_id: str
    kind: str
    medium: str  # "email": which channel carries it
    recipient: str
    locale: str
    subject: str
    body: str
    provider_message_id: str


class DeliveryFailure(Exception):
    """The provider did not take the message. `reason` is a reply code or a class name,
    never the provider's text (it may echo the address)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Channel(Protocol):
    def send(self, envelope: Envelope, *, handover: Callable[[], None]) -> str:
        """Deliver; return the provider's id of the message."""
        ...


def build_email(envelope: Envelope, *, sender: str) -> EmailMessage:
    """A plain-text UTF-8 email in the recipient's language (RFC 5322, RFC 3834)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = envelope.recipient
    message["Subject"] = envelope.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = envelope.provider_message_id
    # Machine-sent: autoresponders (out of office, vacation) do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(envelope.body, charset="utf-8", cte="quoted-printable")
    # After set_content, which clears every Content-* header (RFC 3282).
    message["Content-Language"] = bcp47(envelope.locale)
    return message


def _smtp_failure(
    stage: str, code: int, reply: bytes | str, *, permanent: bool | None = None
) -> DeliveryFailure:
    text = reply.encode("utf-8", "replace") if isinstance(reply, str) else reply
    enhanced = _ENHANCED_STATUS.match(text)
    reason = f"smtp {stage} {code}" + (f" {enhanced.group(1).decode()}" if enhanced else "")
    return DeliveryFailure(reason, permanent=code >= 500 if permanent is None else permanent)


class SmtpChannel:
    """smtplib, one connection per message (notices are few; a pool buys nothing here).

    Connection, TLS, authentication and sender problems are the deployment's, not the
    message's: they are retried (up to the attempts allowed) whatever their code, so that
    fixing the relay's configuration delivers what waited. Only a refusal of this
    recipient or this content (5xx to RCPT or DATA) is permanent.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: str,
        username: str | None,
        password: str | None,
        timeout: float,
        sender: str,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password
        self.timeout = timeout
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpChannel:
        if not settings.smtp_host:
            raise DeliveryFailure("smtp not configured", permanent=False)
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout,
            sender=settings.mail_from,
        )

    def send(self, envelope: Envelope, *, handover: Callable[[], None]) -> str:
        message = build_email(envelope, sender=self.sender)
        smtp = self._open()
        try:
            code, reply = smtp.mail(parseaddr(self.sender)[1])
            if code != 250:
                raise _smtp_failure("mail", code, reply, permanent=False)
            code, reply = smtp.rcpt(envelope.recipient)
            if code not in (250, 251):
                raise _smtp_failure("rcpt", code, reply)
            handover()
            try:
                code, reply = smtp.data(message.as_bytes())
            except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing was sent
                raise _smtp_failure("data", exc.smtp_code, exc.smtp_error) from None
            if code != 250:
                raise _smtp_failure("data", code, reply)
        except BaseException:
            smtp.close()
            raise
        _quit(smtp)
        return envelope.provider_message_id

    def _open(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        try:
            if self.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except smtplib.SMTPResponseException as exc:  # e.g. 421 greeting
            raise _smtp_failure("connect", exc.smtp_code, exc.smtp_error, permanent=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailure(f"connect {type(exc).__name__}", permanent=False) from None
        try:
            smtp.ehlo()
            if self.tls == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except smtplib.SMTPResponseException as exc:
            smtp.close()
            raise _smtp_failure("session", exc.smtp_code, exc.smtp_error, permanent=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise DeliveryFailure(f"session {type(exc).__name__}", permanent=False) from None
        return smtp


def _quit(smtp: smtplib.SMTP) -> None:
    """The message is accepted: a QUIT that fails changes nothing."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


class RecordingChannel:
    """Development and the demo: each message written as `<id>.eml` under a directory
    (open it with any mail reader) and one log line without the address or the text.
    Production refuses it (puente.settings): patients' notices must not pile up on disk."""

    def __init__(self, *, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingChannel:
        return cls(directory=settings.mail_dir, sender=settings.mail_from)

    def send(self, envelope: Envelope, *, handover: Callable[[], None]) -> str:
        message = build_email(envelope, sender=self.sender)
        target = self.directory / f"{envelope.message_id}.eml"
        partial = target.with_suffix(".eml.partial")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as fh:
                fh.write(message.as_bytes())
        except OSError as exc:  # nothing published yet: certainly not "delivered"
            raise DeliveryFailure(f"write {type(exc).__name__}", permanent=False) from None
        handover()
        partial.replace(target)  # the file appears whole, or not at all
        log.info(
            "notification_recorded",
            extra={"outbox_id": envelope.message_id, "kind": envelope.kind, "file": str(target)},
        )
        return envelope.provider_message_id


TRANSPORTS: dict[str, Callable[[Settings], Channel]] = {
    "smtp": SmtpChannel.from_settings,
    "log": RecordingChannel.from_settings,
}


def channel_for(medium: str, settings: Settings) -> Channel:
    """The channel delivering `medium` (only email so far), as PUENTE_NOTIFY_CHANNEL says."""
    if medium != EMAIL:
        raise DeliveryFailure(f"no channel for {medium}", permanent=True)
    return TRANSPORTS[settings.notify_channel](settings)
