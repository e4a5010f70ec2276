"""Errors of the notification outbox, in catalog words; none names the address."""

from __future__ import annotations

from puente.errors import BusinessRuleViolation, Conflict, NotFound
from translation.i18n import N_


class InvalidRecipient(BusinessRuleViolation):
    """The address is not one an email can be delivered to (or would inject headers)."""

    message_key = N_("notify.recipient_invalid")


class MessageNotFound(NotFound):
    message_key = N_("notify.message_unknown")


class AlreadySent(Conflict):
    """A sent message is never sent again (a new event is a new message)."""

    message_key = N_("notify.message_sent_already")


class BeingSent(Conflict):
    """A worker holds the message right now; the sweep settles it if the worker died."""

    message_key = N_("notify.message_sending")
