"""The Celery app, and tasks sent only after the transaction that asked for them commits.

With no broker (PUENTE_BROKER_URL unset) a task runs in-process, synchronously, right
after the commit and before the response leaves; with Redis or RabbitMQ it runs in
`puente worker`. Tasks are idempotent: `acks_late`, re-queued if the worker dies.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from puente.settings import get_settings

log = logging.getLogger("puente.tasks")
PENDING_KEY = "puente_pending_tasks"


def _transport_options(visibility_timeout: int) -> dict[str, int]:
    """Redis hands a task no worker acknowledged (it died) to another after the timeout.

    kombu looks for such tasks every `unacked_restore_interval` x `unacked_restore_throttle`
    seconds (10 x 10 by default): a short timeout (tests, small deployments) gets a sweep
    as short, or a killed worker's task would wait minutes for it.
    """
    options = {"visibility_timeout": visibility_timeout}
    if visibility_timeout < 100:
        options["unacked_restore_interval"] = max(1, visibility_timeout // 5)
        options["unacked_restore_throttle"] = 1
    return options


def _make_celery() -> Celery:
    settings = get_settings()
    app = Celery("puente")
    app.conf.update(
        broker_url=settings.broker_url or "memory://",
        task_always_eager=settings.broker_url is None,
        task_eager_propagates=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(settings.broker_visibility_timeout),
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            # The audit sealer chains new rows; every second keeps the chain fresh.
            "seal-audit-trail": {"task": "puente.audit.seal", "schedule": 1.0},
            "purge-expired-auth-state": {"task": "puente.auth.purge_expired", "schedule": 600.0},
            # Due notification retries, and messages a dead worker left `sending`.
            "sweep-notification-outbox": {"task": "puente.notify.sweep", "schedule": 30.0},
            # `$export` files past their retention (exchange.export_jobs).
            "purge-expired-exports": {"task": "puente.exchange.export_purge", "schedule": 600.0},
        },
        imports=(
            "puente.audit.tasks",
            "puente.auth.tasks",
            "puente.notify.tasks",
            "consent.tasks",
            "exchange.tasks",
        ),
    )
    return app


celery_app = _make_celery()


def enqueue(session: Session, task_name: str, *args: Any) -> None:
    """Send `task_name(*args)` once `session` commits; forget it if it rolls back."""
    # Remember the innermost transaction, so that rolling back a savepoint drops only
    # what was asked for inside it.
    if not session.in_transaction():
        session.begin()
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(PENDING_KEY, []).append((transaction, task_name, args))


def pending(session: Session) -> list[tuple[str, tuple[Any, ...]]]:
    """The tasks `session` will send when it commits, in order: (name, args)."""
    return [(name, args) for _transaction, name, args in session.info.get(PENDING_KEY, [])]


def _send(task_name: str, args: tuple[Any, ...]) -> None:
    try:
        if celery_app.conf.task_always_eager:
            celery_app.loader.import_default_modules()
            result = celery_app.tasks[task_name].apply(args=args)
            if result.failed():
                log.error("task_failed", extra={"task": task_name})
        else:
            celery_app.send_task(task_name, args=args)
    except Exception:  # a task failing in-process must not undo a committed request
        log.exception("task_not_sent", extra={"task": task_name})


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Releasing a savepoint fires this too, while the savepoint is still the session's
    # current transaction: nothing is committed until the outermost transaction is.
    if session.in_nested_transaction():
        return
    pending = session.info.pop(PENDING_KEY, [])
    for _transaction, task_name, args in pending:
        _send(task_name, args)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(PENDING_KEY)
    if not pending:
        return
    kept = [item for item in pending if not _within(item[0], previous)]
    if kept:
        session.info[PENDING_KEY] = kept
    else:
        session.info.pop(PENDING_KEY, None)
