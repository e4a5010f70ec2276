"""Delivery: `deliver(message_id)` after the queueing transaction commits, and a sweep
that Celery beat runs to send due retries and settle messages a dead worker left behind.

Never twice, and what that costs. SMTP cannot be asked "did you get this?", so there is
a moment, between the relay accepting the message and our row saying `sent`, when a
crash leaves the outcome unknown. Each attempt therefore runs in steps, each committed:
1. claim: `queued` -> `sending`, atomically (one worker wins; a second run of the task,
   or a redelivery, finds nothing to claim);
2. hand over: the channel calls back right before the step after which the provider may
   hold the message (SMTP: before DATA); we record that moment;
3. settle: `sent`, or, when the channel says the provider certainly refused, `queued`
   again after a backoff (`failed` when permanent or out of attempts).
If the worker dies, or the connection breaks, after step 2, we do NOT resend: the message
is marked `failed` with "outcome unknown" for an operator (`puente outbox list`), who can
resend it (`puente outbox retry ID`) with the same Message-ID, derived from the
idempotency key, so the recipient's mail system can recognise the copy. That is
at-most-once delivery for the uncertain window, and at-least-once for everything before
it (a crash before hand-over is certainly undelivered and is retried by the sweep). We
chose it because a notice received twice about emergency access to one's records is
alarming and misleading, while a notice held back is visible to operators and recovered
by one command; the window is one SMTP round trip, so it is rarely hit.

A worker is taken for dead when its claim is older than PUENTE_NOTIFY_CLAIM_TIMEOUT
(10 minutes, far beyond a send's few SMTP timeouts). Should it only have been slow, it
cannot do harm: before hand-over it finds its claim gone and stops; after, its `sent`
still lands, correcting the sweep's "outcome unknown".
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid

from puente.db import unit_of_work, utcnow
from puente.notify import service
from puente.notify.channels import DeliveryFailure, channel_for
from puente.notify.models import Status
from puente.settings import get_settings
from puente.tasks import celery_app, enqueue

log = logging.getLogger("puente.notify")
# Due messages the sweep hands to `deliver` per run (more wait for the next run).
SWEEP_BATCH = 200
# Without a broker there is no beat: each in-process delivery also sweeps, at most this
# often per process, so retries happen while the embedded server is used.
EMBEDDED_SWEEP_INTERVAL = 30.0


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"  # queued again for a later attempt
    FAILED = "failed"  # refused for good, or out of attempts
    UNKNOWN = "unknown"  # maybe delivered: failed, for an operator
    SKIPPED = "skipped"  # nothing to do: gone, sent, not due, or another worker has it


def deliver_now(message_id: str) -> Outcome:
    """One attempt at one message, if it is due and nobody else holds it."""
    token = str(uuid.uuid4())
    with unit_of_work() as session:
        envelope = service.claim(session, message_id=message_id, token=token, now=utcnow())
    if envelope is None:
        return Outcome.SKIPPED
    handed_over = False

    def handover() -> None:
        nonlocal handed_over
        with unit_of_work() as session:
            if not service.mark_handed_over(
                session, message_id=message_id, token=token, now=utcnow()
            ):
                raise DeliveryFailure("claim lost", permanent=False)
        handed_over = True

    try:
        channel = channel_for(envelope.medium, get_settings())
        provider_id = channel.send(envelope, handover=handover)
    except DeliveryFailure as failure:
        return _failed(message_id, token, failure.reason, permanent=failure.permanent)
    except Exception as exc:  # a broken connection, or a bug: did the message leave?
        reason = type(exc).__name__
        log.warning("notification_send_error", exc_info=True, extra={"outbox_id": message_id})
        if handed_over:
            return _unknown(message_id, token, reason)
        return _failed(message_id, token, reason, permanent=False)
    with unit_of_work() as session:
        service.mark_sent(
            session,
            message_id=message_id,
            token=token,
            now=utcnow(),
            provider_message_id=provider_id,
        )
    log.info("notification_sent", extra={"outbox_id": message_id, "kind": envelope.kind})
    return Outcome.SENT


def _failed(message_id: str, token: str, reason: str, *, permanent: bool) -> Outcome:
    with unit_of_work() as session:
        status = service.mark_attempt_failed(
            session, message_id=message_id, token=token, now=utcnow(), reason=reason,
            permanent=permanent,
        )  # fmt: skip
    if status is None:  # the claim was lost (the sweep settled it): not ours to judge
        return Outcome.SKIPPED
    outcome = Outcome.RETRY if status is Status.QUEUED else Outcome.FAILED
    log.warning(
        "notification_not_delivered",
        extra={"outbox_id": message_id, "reason": reason, "outcome": outcome.value},
    )
    return outcome


def _unknown(message_id: str, token: str, reason: str) -> Outcome:
    with unit_of_work() as session:
        service.mark_outcome_unknown(
            session, message_id=message_id, token=token, now=utcnow(), reason=reason
        )
    log.error("notification_outcome_unknown", extra={"outbox_id": message_id, "reason": reason})
    return Outcome.UNKNOWN


def sweep() -> service.Settled:
    """Settle stuck messages, send `deliver` for every due one (after commit), and blank
    the text of messages sent longer ago than the retention."""
    now = utcnow()
    with unit_of_work() as session:
        settled = service.settle_stuck(session, now=now)
        for message_id in service.due(session, now=now, limit=SWEEP_BATCH):
            enqueue(session, service.DELIVER_TASK, message_id)
    with unit_of_work() as session:
        service.redact_sent(session, now=now)
    if settled.requeued or settled.failed:
        log.warning(
            "notifications_stuck",
            extra={"requeued": settled.requeued, "failed": settled.failed},
        )
    return settled


class _Clock:
    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval:
                return False
            self._last = now
            return True


_embedded_sweeps = _Clock(EMBEDDED_SWEEP_INTERVAL)


@celery_app.task(name=service.DELIVER_TASK, acks_late=True)
def deliver(message_id: str) -> str:
    """Idempotent: a second run, or a redelivery, finds the message claimed or settled."""
    outcome = deliver_now(message_id)
    if celery_app.conf.task_always_eager and _embedded_sweeps.due():
        sweep()
    return outcome.value


@celery_app.task(name=service.SWEEP_TASK, acks_late=True)
def sweep_task() -> dict[str, int]:
    settled = sweep()
    return {"requeued": settled.requeued, "failed": settled.failed}
