"""`puente outbox list|retry|sweep|send-test`: the notification outbox for operators.

Nothing printed names a patient: addresses are masked (`m***@example.org`), subjects and
bodies are never shown, errors are reply codes.
"""

from __future__ import annotations

import datetime as dt
import uuid

import typer

from puente.cli.common import actor, fail
from puente.errors import PuenteError
from translation.i18n import N_

outbox_app = typer.Typer(
    name="outbox", help="Notifications waiting, sent and failed.", no_args_is_help=True
)
TEST_SUBJECT = N_("notify.test.subject")
TEST_BODY = N_("notify.test.body")


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


@outbox_app.command("list")
def list_command(
    status: str | None = typer.Option(None, help="queued, sending, sent or failed"),
    limit: int = typer.Option(50, min=1, max=1000, help="Newest first, at most this many"),
) -> None:
    """List messages, newest first: id, status, kind, masked address, attempts, error."""
    from puente.db import unit_of_work
    from puente.notify import service
    from puente.notify.models import Status

    try:
        wanted = Status(status) if status else None
    except ValueError:
        raise typer.BadParameter(
            "one of queued, sending, sent, failed", param_hint="--status"
        ) from None
    with unit_of_work() as session:
        messages = service.list_messages(session, status=wanted, limit=limit)
        rows = [
            (
                m.id, m.status, m.kind, service.mask_address(m.recipient), str(m.attempts),
                _when(m.created_at), _when(m.sent_at if m.status == "sent" else m.next_attempt_at),
                m.last_error or "-",
            )
            for m in messages
        ]  # fmt: skip
    typer.echo("id\tstatus\tkind\trecipient\tattempts\tcreated\tsent/next\tlast error")
    for row in rows:
        typer.echo("\t".join(row))


@outbox_app.command("retry")
def retry_command(message_id: str = typer.Argument(..., help="The message's id")) -> None:
    """Send a failed message again (due now, attempts counted afresh)."""
    from puente.db import unit_of_work
    from puente.notify import service

    try:
        with unit_of_work() as session:
            message = service.retry(session, message_id=message_id, actor=actor())
            unknown = (message.last_error or "").startswith("outcome unknown")
            retried = message.id
    except PuenteError as exc:
        fail(exc)
    if unknown:
        typer.echo(
            "warning: the last attempt may have reached the recipient; the copy carries the "
            "same Message-ID, so mail systems that keep it can tell",
            err=True,
        )
    _report(retried)


def _report(message_id: str) -> None:
    """One line: id, status, last error; exit 1 if the message failed. With a broker the
    worker may not have tried yet: the status says `queued` then."""
    from puente.db import unit_of_work
    from puente.notify.models import OutboxMessage

    with unit_of_work() as session:
        message = session.get(OutboxMessage, message_id)
        status = message.status if message else "gone"
        error = (message.last_error if message else None) or "-"
    typer.echo(f"{message_id}\t{status}\t{error}")
    if status == "failed":
        raise typer.Exit(1)


@outbox_app.command("sweep")
def sweep_command() -> None:
    """Send due retries and settle messages a dead worker left (beat does it every 30 s;
    with no broker, run it from cron)."""
    from puente.notify.tasks import sweep

    settled = sweep()
    typer.echo(f"requeued {settled.requeued}, failed {settled.failed} stuck messages")


@outbox_app.command("send-test")
def send_test_command(
    address: str = typer.Argument(..., help="Where to send the test message"),
    locale: str = typer.Option("en_US", help="en_US or es_MX"),
) -> None:
    """Queue and deliver a test message, to check the SMTP settings; exit 1 if it failed."""
    from puente.db import unit_of_work
    from puente.notify import service

    try:
        with unit_of_work() as session:
            message = service.queue(
                session, idempotency_key=f"send-test:{uuid.uuid4()}", kind="puente.test",
                recipient=address, locale=locale, subject_key=TEST_SUBJECT, body_key=TEST_BODY,
            )  # fmt: skip
            message_id = message.id
    except PuenteError as exc:
        fail(exc)
    _report(message_id)


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_app)
