"""What requests leave in the trail: who, role, hospital, country, purpose, request id,
source address, what was touched, and the outcome; and that the rows get sealed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from puente.audit.models import AuditChain, AuditEntry, AuditReference
from puente.audit.verify import verify
from puente.db import session_factory
from tests.factories import bearer, organizations


def _load() -> None:
    with session_factory()() as session:
        organizations(session)
        session.commit()


def _entries(session: Session) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_read_is_audited_with_who_where_why_and_what(client: TestClient, engine: Engine) -> None:
    _load()
    headers = bearer("system", "umcep", purpose="TREAT") | {"X-Request-ID": "req-read-000001"}
    assert client.get("/fhir/Organization/hgcj", headers=headers).status_code == 200
    with session_factory()() as session:
        [entry] = _entries(session)
        assert (entry.event_type, entry.subtype, entry.action, entry.outcome) == (
            "rest", "read", "R", 0,
        )  # fmt: skip
        assert entry.agent == "umcep-client"
        assert entry.agent_role == "system"
        assert entry.org_code == "umcep"
        assert entry.country == "US"
        assert entry.purpose_of_use == "TREAT"
        assert entry.request_id == "req-read-000001"
        assert entry.source_ip == "testclient"
        assert entry.entities == ["Organization/hgcj"]
        assert entry.outcome_detail is None
        references = session.execute(
            select(AuditReference.kind, AuditReference.reference).where(
                AuditReference.audit_id == entry.id
            )
        ).all()
        assert references == [("entity", "Organization/hgcj")]


def test_search_is_audited_with_every_match(client: TestClient, engine: Engine) -> None:
    _load()
    response = client.get("/fhir/Organization", params={"partof": "mx"}, headers=bearer())
    assert response.status_code == 200
    with session_factory()() as session:
        [entry] = _entries(session)
        assert (entry.subtype, entry.action, entry.outcome) == ("search-type", "E", 0)
        assert entry.entities == ["Organization/hgcj"]
        assert entry.org_code == "hgcj"
        assert entry.country == "MX"


def test_failed_read_is_audited_as_minor_failure(client: TestClient, engine: Engine) -> None:
    _load()
    response = client.get("/fhir/Organization/nope", headers=bearer())
    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    with session_factory()() as session:
        [entry] = _entries(session)
        assert (entry.subtype, entry.outcome) == ("read", 4)
        assert entry.outcome_detail == "error.not_found"
        assert entry.request_id == request_id
        assert entry.entities == ["Organization/nope"]


def test_rows_are_sealed_before_the_response_in_embedded_mode(
    client: TestClient, engine: Engine
) -> None:
    _load()
    for _ in range(3):
        client.get("/fhir/Organization/hgcj", headers=bearer())
    client.get("/fhir/Organization/missing", headers=bearer())
    with session_factory()() as session:
        entries = _entries(session)
        chain = list(session.scalars(select(AuditChain).order_by(AuditChain.position)))
        assert [c.audit_id for c in chain] == [e.id for e in entries]
        assert len(chain) == 4
        report = verify(session)
        assert report.ok
        assert report.pending == 0


def test_with_read_auditing_off_reads_and_searches_leave_no_row_but_writes_do(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Development may switch read auditing off to measure the store's own cost: reads
    and queries (a search is action E in BALP) alike; writes and failures stay audited."""
    from puente.settings import get_settings

    _load()
    monkeypatch.setenv("PUENTE_AUDIT_READS", "false")
    get_settings.cache_clear()
    assert client.get("/fhir/Organization/hgcj", headers=bearer()).status_code == 200
    assert (
        client.get("/fhir/Organization", params={"partof": "mx"}, headers=bearer()).status_code
        == 200
    )
    assert client.get("/fhir/Organization/nope", headers=bearer()).status_code == 404
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "gender": "female"},
        headers={**bearer(), "Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 201
    with session_factory()() as session:
        kept = [(e.subtype, e.outcome) for e in _entries(session)]
    assert kept == [("read", 4), ("create", 0)]


def test_a_transaction_leaves_one_event_per_entry_indexed_under_its_own_resources(
    client: TestClient, engine: Engine
) -> None:
    _load()
    entries = []
    for n in range(2):
        patient = {"resourceType": "Patient", "name": [{"family": f"Trail{n}"}]}
        visit = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "EMER"},
            "subject": {"reference": f"urn:uuid:p{n}"},
        }
        entries.append(
            {
                "fullUrl": f"urn:uuid:p{n}",
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        entries.append({"resource": visit, "request": {"method": "POST", "url": "Encounter"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = client.post("/fhir", json=bundle, headers=bearer())
    assert response.status_code == 200
    created = [e["response"]["location"].split("/_history")[0] for e in response.json()["entry"]]
    # Each Encounter is about the Patient posted just before it.
    expected = {
        resource: {("entity", resource), ("patient", created[n - n % 2])}
        for n, resource in enumerate(created)
    }
    with session_factory()() as session:
        writes = [e for e in _entries(session) if e.subtype == "create"]
        assert len(writes) == len(created)
        for entry in writes:
            references = session.execute(
                select(AuditReference.kind, AuditReference.reference).where(
                    AuditReference.audit_id == entry.id
                )
            ).all()
            assert set(references) == expected[entry.entities[0]]
