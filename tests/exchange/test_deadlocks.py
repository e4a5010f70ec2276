"""Two writers that take the same resources in opposite orders deadlock on PostgreSQL,
which aborts one of them. An import batch so aborted runs again and completes; an HTTP
request so aborted is a 503 OperationOutcome (`transient`) with Retry-After, never a 500.

Real connections on two threads: the first writer holds one resource and waits on a
second that the other writer holds, and the other then asks for the first one. The
writer that waited first is the one whose deadlock check (`deadlock_timeout`, 1 s) finds
the cycle, and PostgreSQL aborts it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from exchange import import_jobs, writes
from exchange.models import ImportJob, ResourceVersion, StoredResource
from exchange.tasks import import_task
from puente import db, tasks
from puente.auth import service as auth
from puente.db import is_transient, session_factory
from tests.exchange.test_import_async import _ndjson, register_systems
from tests.exchange.test_write_races import HGCJ
from tests.factories import bearer, fhir_json, patient

WAIT_SECONDS = 30


@pytest.fixture
def postgres_only(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("SQLite takes one writer at a time: it never deadlocks")


def _wait_until_blocked(engine: Engine) -> None:
    """Until a session of this database waits for a lock another holds."""
    deadline = time.monotonic() + WAIT_SECONDS
    with engine.connect() as watcher:
        while True:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
            ).scalar_one()
            watcher.rollback()
            if waiting:
                return
            assert time.monotonic() < deadline, "the first writer never waited"
            time.sleep(0.02)


def _put(session: Session, res_id: str, gender: str) -> None:
    writes.update(
        session,
        HGCJ,
        resource_type="Patient",
        res_id=res_id,
        body=patient(id=res_id, gender=gender),
    )
    session.flush()


def _versions(*res_ids: str) -> dict[str, tuple[int, int]]:
    """Per id: the current version and how many versions are stored."""
    with session_factory()() as session:
        found = {}
        for res_id in res_ids:
            row = session.scalars(
                select(StoredResource).where(StoredResource.res_id == res_id)
            ).one()
            count = session.scalar(
                select(func.count())
                .select_from(ResourceVersion)
                .where(ResourceVersion.resource_pk == row.pk)
            )
            found[res_id] = (row.version, int(count or 0))
        return found


def test_an_import_batch_aborted_by_a_deadlock_runs_again(
    client: TestClient, engine: Engine, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_systems()
    monkeypatch.setattr(tasks, "_send", lambda name, args: None)  # the task runs below
    lines = [patient(id="hgcj-dl-a", gender="female"), patient(id="hgcj-dl-b", gender="female")]
    with session_factory()() as session:
        system = auth.find_system(session, "hgcj")
        assert system is not None
        job_id = import_jobs.kick_off(
            session, auth.system_caller(system), payload=_ndjson(lines)
        ).id
        session.commit()

    other = session_factory()()  # a transaction that writes b, then a
    failures: list[BaseException] = []

    def run_import() -> None:
        try:
            import_task(job_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    importer = threading.Thread(target=run_import)
    try:
        _put(other, "hgcj-dl-b", "male")
        importer.start()
        _wait_until_blocked(engine)  # the import holds a and waits for b
        _put(other, "hgcj-dl-a", "male")  # waits for a: the cycle, the import is aborted
        other.commit()
    finally:
        other.close()
        importer.join(WAIT_SECONDS)
    assert not importer.is_alive()
    assert failures == []

    with session_factory()() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        assert job.status == import_jobs.COMPLETED
        # Run again after the transaction committed, the batch found both stored.
        assert (job.read_count, job.created_count, job.rejected_count) == (2, 0, 0)
        assert job.updated_count == 2
    assert _versions("hgcj-dl-a", "hgcj-dl-b") == {"hgcj-dl-a": (2, 2), "hgcj-dl-b": (2, 2)}


def test_a_transaction_aborted_by_a_deadlock_is_503_with_retry_after(
    client: TestClient, engine: Engine, postgres_only: None
) -> None:
    register_systems()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": patient(id=res_id, gender="female"),
                "request": {"method": "PUT", "url": f"Patient/{res_id}"},
            }
            for res_id in ("hgcj-dl-c", "hgcj-dl-d")
        ],
    }
    other = session_factory()()  # writes d, then c
    responses: list[Any] = []

    def post() -> None:
        responses.append(
            client.post(
                "/fhir",
                json=bundle,
                headers={**bearer("system", "hgcj"), **fhir_json(), "Accept-Language": "es"},
            )
        )

    request = threading.Thread(target=post)
    try:
        _put(other, "hgcj-dl-d", "male")
        request.start()
        _wait_until_blocked(engine)  # the transaction holds c and waits for d
        _put(other, "hgcj-dl-c", "male")  # the cycle: the request is aborted
        other.commit()
    finally:
        other.close()
        request.join(WAIT_SECONDS)
    assert not request.is_alive()

    [response] = responses
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert outcome["issue"][0]["diagnostics"] == "error.transient_conflict"
    assert "Envíela de nuevo" in outcome["issue"][0]["details"]["text"]
    # Nothing of the aborted transaction was stored: both are the other writer's.
    assert _versions("hgcj-dl-c", "hgcj-dl-d") == {"hgcj-dl-c": (1, 1), "hgcj-dl-d": (1, 1)}
    again = client.post("/fhir", json=bundle, headers={**bearer("system", "hgcj"), **fhir_json()})
    assert again.status_code == 200, again.text


def test_transient_errors_are_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    import psycopg

    locked = OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
    assert is_transient(locked)
    assert is_transient(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert is_transient(psycopg.errors.SerializationFailure("could not serialize"))
    wrapped = DBAPIError("COPY", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
    assert is_transient(wrapped)
    assert not is_transient(OperationalError("SELECT", {}, sqlite3.OperationalError("no table")))
    assert not is_transient(psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_transient(RuntimeError("database is locked"))

    monkeypatch.setattr(db, "RETRY_PAUSE_SECONDS", 0.001)
    runs: list[int] = []

    def work(session: Session) -> int:
        runs.append(1)
        if len(runs) < 3:
            raise locked
        return len(runs)

    assert db.retrying(work) == 3
    runs.clear()
    with pytest.raises(OperationalError):
        db.retrying(work, attempts=2)  # bounded: the last error is raised
    assert len(runs) == 2
