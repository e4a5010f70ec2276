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
    *,
    marker: str = "INSERT INTO RESOURCE ",
) -> PuenteError | None:
    """Run `write` in a first session and flush it, then `second_write` (or `write` again)
    in a second session on a thread that has read the store and reached its INSERT before
    the first commits. Returns what the second raised (None if it succeeded)."""
    first = session_factory()()
    second = session_factory()()
    inserting = threading.Event()
    outcome: list[PuenteError | None] = []

    def noticed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(marker):
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
    """A batch entry racing a create of its id: on PostgreSQL it loses the INSERT and is a
    409 entry; on SQLite its savepoint waits for the single write lock, then it finds the
    resource stored and updates it (unchanged, 200). Never a 500, and the batch's other
    entries stand either way."""
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

    marker = "INSERT INTO RESOURCE " if is_postgres else "BEGIN IMMEDIATE"
    assert _race(engine, put, run, marker=marker) is None
    (outcomes,) = results
    if is_postgres:
        assert outcomes[0].status == "409 Conflict"
        assert outcomes[0].issues[0].message_key == "error.created_concurrently"
    else:
        assert outcomes[0].status == "200 OK"
        assert outcomes[0].version == 1
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


# The statement a conditional write waits in while another holds its criteria.
_HOLD = ("SELECT PG_ADVISORY_XACT_LOCK", "UPDATE RESOURCE SET VERSION = VERSION")
MRN = {"system": "urn:oid:2.16.840.1.113883.4.642.99.1", "value": "MRN-777"}


def _patients_with_mrn() -> list[str]:
    with session_factory()() as session:
        rows = session.scalars(
            select(StoredResource).where(StoredResource.res_type == "Patient")
        ).all()
        return [r.res_id for r in rows if r.content and MRN in r.content.get("identifier", [])]


def test_simultaneous_conditional_creates_make_one_resource(
    client: TestClient, engine: Engine, is_postgres: bool
) -> None:
    """Both find nothing before either commits; the second waits on the criteria, then
    finds the first's Patient (200, no new resource) instead of creating a duplicate."""
    body = patient(identifier=[MRN])
    criteria = [("identifier", f"{MRN['system']}|{MRN['value']}")]
    results: list[writes.Written] = []

    def create(session: Session) -> None:
        results.append(
            writes.create(session, HGCJ, resource_type="Patient", body=body, if_none_exist=criteria)
        )

    marker = _HOLD[0] if is_postgres else _HOLD[1]
    assert _race(engine, create, marker=marker) is None
    first, second = results
    assert first.created
    assert not second.created
    assert not second.changed
    assert second.res_id == first.res_id
    assert _patients_with_mrn() == [first.res_id]


def test_transaction_conditional_create_waits_for_a_racing_create(
    client: TestClient, engine: Engine, is_postgres: bool
) -> None:
    criteria = f"identifier={MRN['system']}|{MRN['value']}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:3c1d7a52-9b0e-4f6c-8d21-5e4f3a2b1c0d",
                "resource": patient(identifier=[MRN]),
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": criteria},
            }
        ],
    }
    outcomes: list[list[transaction.Outcome]] = []

    def create(session: Session) -> None:
        writes.create(
            session,
            HGCJ,
            resource_type="Patient",
            body=patient(identifier=[MRN]),
            if_none_exist=[("identifier", f"{MRN['system']}|{MRN['value']}")],
        )

    def run(session: Session) -> None:
        _, entries = transaction.parse(bundle, "http://testserver/fhir")
        outcomes.append(transaction.run_transaction(session, HGCJ, entries))

    marker = _HOLD[0] if is_postgres else _HOLD[1]
    assert _race(engine, create, run, marker=marker) is None
    [[outcome]] = outcomes
    assert outcome.status == "200 OK"
    assert len(_patients_with_mrn()) == 1


def test_batches_with_the_same_conditional_creates_in_either_order_make_one_each(
    client: TestClient, engine: Engine, is_postgres: bool
) -> None:
    other = {"system": MRN["system"], "value": "MRN-778"}

    def entry(identifier: dict[str, str]) -> dict[str, Any]:
        criteria = f"identifier={identifier['system']}|{identifier['value']}"
        return {
            "resource": patient(identifier=[identifier]),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": criteria},
        }

    def batch(*identifiers: dict[str, str]) -> Callable[[Session], None]:
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [entry(i) for i in identifiers],
        }

        def run(session: Session) -> None:
            _, entries = transaction.parse(bundle, "http://testserver/fhir")
            statuses.append([o.status for o in transaction.run_batch(session, HGCJ, entries)])

        return run

    statuses: list[list[str]] = []
    marker = _HOLD[0] if is_postgres else _HOLD[1]
    assert _race(engine, batch(MRN, other), batch(other, MRN), marker=marker) is None
    assert statuses == [["201 Created", "201 Created"], ["200 OK", "200 OK"]]
    with session_factory()() as session:
        count = len(
            session.scalars(
                select(StoredResource.pk).where(StoredResource.res_type == "Patient")
            ).all()
        )
    assert count == 2
