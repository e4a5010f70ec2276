"""Tasks leave only after the transaction that asked for them commits (puente.tasks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from puente.tasks import PENDING_KEY, celery_app, enqueue

CALLS: list[str] = []


@celery_app.task(name="tests.tasks.record")
def record(value: str) -> None:
    CALLS.append(value)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    CALLS.clear()
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        yield session


def test_task_runs_after_commit_not_before(session: Session) -> None:
    enqueue(session, "tests.tasks.record", "first")
    session.flush()
    assert CALLS == []
    session.commit()
    assert CALLS == ["first"]
    session.execute(text("SELECT 1"))
    session.commit()
    assert CALLS == ["first"]  # sent once, not on every later commit


def test_task_is_dropped_on_rollback(session: Session) -> None:
    enqueue(session, "tests.tasks.record", "never")
    session.rollback()
    assert PENDING_KEY not in session.info
    session.execute(text("SELECT 1"))
    session.commit()
    assert CALLS == []


def test_a_failing_task_does_not_undo_the_commit(session: Session) -> None:
    enqueue(session, "tests.tasks.no-such-task")
    enqueue(session, "tests.tasks.record", "after")
    session.commit()  # logged, not raised
    assert CALLS == ["after"]


def test_with_a_broker_the_task_is_sent_after_commit(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, Any]] = []
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, args=(): sent.append((name, tuple(args)))
    )
    enqueue(session, "puente.audit.seal")
    assert sent == []
    session.commit()
    assert sent == [("puente.audit.seal", ())]
    assert CALLS == []
