"""Two writers creating one resource at the same moment: one wins, the other hears 409.

Both read "no such row" before either commits; the unique (type, id) constraint lets one
INSERT win. The loser must get a Conflict OperationOutcome, never a 500, and nothing the
winner stored may be lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from exchange import transaction, writes
from exchange.models import ResourceVersion, StoredResource
from puente.auth.caller import Caller
from puente.auth.scopes import Role, grant
from puente.db import session_factory
from puente.errors import Conflict, PuenteError
from tests.factories import bearer, fhir_json, patient

HGCJ = Caller(
    subject="hgcj-client",
    role=Role.SYSTEM,
    org_code="hgcj",
    country="MX",
    scopes=grant(Role.SYSTEM, None),
)


def _race(
    engine: Engine,
    write: Callable[[Session], Any],
    second_write: Callable[[Session], Any] | None = None,
) -> PuenteError | None:
    """Run `write` in a first session and flush it, then `second_write` (or `write` again)
    in a second session on a thread that has read the store and reached its INSERT before
    the first commits. Returns what the second raised (None if it succeeded)."""
    first = session_factory()()
    second = session_factory()()
    inserting = threading.Event()
    outcome: list[PuenteError | None] = []

    def noticed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RESOURCE "):
            inserting.set()

    def run_second() -> None:
        try:
            (second_write or write)(second)
            second.commit()
            outcome.append(None)
        except PuenteError as exc:
            second.rollback()
            outcome.append(exc)
        finally:
            second.close()

    try:
        write(first)
        first.flush()
        event.listen(engine, "before_cursor_execute", noticed)
        thread = threading.Thread(target=run_second)
        thread.start()
        assert inserting.wait(20), "the second writer never reached its INSERT"
        time.sleep(0.3)  # let the INSERT block on the first writer's row or lock
        first.commit()
        thread.join(40)
        assert not thread.is_alive()
    finally:
        event.remove(engine, "before_cursor_execute", noticed)
        first.close()
    return outcome[0]


def _stored(res_id: str) -> tuple[StoredResource, list[int]]:
    with session_factory()() as session:
        row = session.scalars(select(StoredResource).where(StoredResource.res_id == res_id)).one()
        versions = session.scalars(
            select(ResourceVersion.version).where(ResourceVersion.resource_pk == row.pk)
        ).all()
        return row, list(versions)


def test_create_by_put_race_is_409_and_keeps_the_winner(client: TestClient, engine: Engine) -> None:
    def put(given: str) -> Callable[[Session], Any]:
        body = patient(id="hgcj-race-1", name=[{"family": given}])
        return lambda session: writes.update(
            session, HGCJ, resource_type="Patient", res_id="hgcj-race-1", body=body
        )

    lost = _race(engine, put("Primero"), put("Segundo"))

    assert isinstance(lost, Conflict)
    assert lost.status_code == 409
    assert lost.issues[0].code == "conflict"
    assert lost.issues[0].message_key == "error.created_concurrently"
    row, versions = _stored("hgcj-race-1")
    assert row.version == 1
    assert versions == [1]
    assert row.content is not None
    assert row.content["name"] == [{"family": "Primero"}]


def test_transaction_entry_race_names_the_entry(client: TestClient, engine: Engine) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1c2b9e-2d7a-4a53-9d8e-0b2f3c4d5e6f",
                "resource": patient(id="hgcj-race-2"),
                "request": {"method": "PUT", "url": "Patient/hgcj-race-2"},
            }
        ],
    }

    def run(session: Session) -> Any:
        _, entries = transaction.parse(bundle, "http://testserver/fhir")
        return transaction.run_transaction(session, HGCJ, entries)

    lost = _race(engine, run)

    assert isinstance(lost, transaction.EntryFailed)
    assert lost.status_code == 409
    assert lost.issues[0].message_key == "error.created_concurrently"
    assert lost.issues[0].expression == ("Bundle.entry[0]",)
    assert _stored("hgcj-race-2")[0].version == 1


def test_batch_entry_race_fails_alone(
    client: TestClient, engine: Engine, is_postgres: bool
) -> None:
    """A batch entry that loses the race is a 409 entry; the batch's other entries stand."""
    if not is_postgres:
        pytest.skip("pysqlite runs a batch's first SAVEPOINT outside BEGIN (see store.py)")
    entries_json = [
        {
            "resource": patient(id="hgcj-race-3"),
            "request": {"method": "PUT", "url": "Patient/hgcj-race-3"},
        },
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
    ]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries_json}
    results: list[list[transaction.Outcome]] = []

    def put(session: Session) -> Any:
        return writes.update(
            session,
            HGCJ,
            resource_type="Patient",
            res_id="hgcj-race-3",
            body=patient(id="hgcj-race-3"),
        )

    def run(session: Session) -> Any:
        _, entries = transaction.parse(bundle, "http://testserver/fhir")
        results.append(transaction.run_batch(session, HGCJ, entries))

    assert _race(engine, put, run) is None
    (outcomes,) = results
    assert outcomes[0].status == "409 Conflict"
    assert outcomes[0].issues[0].message_key == "error.created_concurrently"
    assert outcomes[1].status == "201 Created"
    with session_factory()() as session:
        count = len(session.scalars(select(StoredResource.pk)).all())
    assert count == 2


@pytest.mark.parametrize("attempts", [4])
def test_simultaneous_puts_over_http_never_500(client: TestClient, attempts: int) -> None:
    """Several clients PUT one new id at once: exactly one 201, the others 200 (they saw
    it stored) or 409 (they raced it), and always an OperationOutcome for a 409."""
    for round_number in range(3):
        res_id = f"hgcj-http-race-{round_number}"
        start = threading.Barrier(attempts)

        def put(_: int, res_id: str = res_id, start: threading.Barrier = start) -> Any:
            start.wait()
            return client.put(
                f"/fhir/Patient/{res_id}",
                json=patient(id=res_id),
                headers={**bearer("system", "hgcj"), **fhir_json()},
            )

        with ThreadPoolExecutor(attempts) as pool:
            responses = list(pool.map(put, range(attempts)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(201) == 1, statuses
        assert set(statuses) <= {200, 201, 409}, statuses
        for response in responses:
            if response.status_code == 409:
                issue = response.json()["issue"][0]
                assert issue["code"] == "conflict"
                assert issue["diagnostics"] == "error.created_concurrently"
                assert res_id in issue["details"]["text"]
        read = client.get(f"/fhir/Patient/{res_id}", headers=bearer("system", "hgcj"))
        assert read.json()["meta"]["versionId"] == "1"
