"""Tasks leave only after the transaction that asked for them commits (puente.tasks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from puente import tasks
from puente.tasks import celery_app, enqueue

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
    assert tasks.pending(session) == []
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


def test_savepoints_neither_send_nor_drop_the_outer_transactions_tasks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(tasks, "_send", lambda name, _args: sent.append(name))
    with Session(bind=engine) as session:
        tasks.enqueue(session, "outer")
        with session.begin_nested():
            tasks.enqueue(session, "released")
        assert sent == []  # releasing a savepoint commits nothing
        savepoint = session.begin_nested()
        tasks.enqueue(session, "rolled-back")
        savepoint.rollback()
        session.commit()
    assert sent == ["outer", "released"]


def test_a_task_asked_for_before_any_statement_is_dropped_on_rollback(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(tasks, "_send", lambda name, _args: sent.append(name))
    with Session(bind=engine) as session:
        tasks.enqueue(session, "never")
        session.rollback()
        session.commit()
    assert sent == []
