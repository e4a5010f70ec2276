"""A patient's token sees its own compartment only: its Patient record and what
references it, never the rest of its hospital's patients (SMART `patient/` scopes)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from exchange import store
from puente.auth.scopes import Role
from puente.db import session_factory
from tests.factories import bearer


def _patient(pid: str, family: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}


def _visit(eid: str, pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": f"Patient/{pid}"},
    }


def _store() -> None:
    with session_factory()() as session:
        for resource in (
            _patient("hgcj-me", "Ramírez"),
            _patient("hgcj-other", "Soto"),
            _visit("hgcj-e-me", "hgcj-me"),
            _visit("hgcj-e-other", "hgcj-other"),
        ):
            store.put(session, owner="hgcj", owner_country="MX", resource=resource)
        session.commit()


def _me() -> dict[str, str]:
    return bearer(Role.PATIENT, "hgcj", fhir_user="Patient/hgcj-me", subject="Patient/hgcj-me")


def _ids(body: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in body.get("entry", [])}


def test_a_patient_reads_its_own_record_and_not_a_neighbours(client: TestClient) -> None:
    _store()
    assert client.get("/fhir/Patient/hgcj-me", headers=_me()).status_code == 200
    assert client.get("/fhir/Patient/hgcj-other", headers=_me()).status_code == 404
    assert client.get("/fhir/Encounter/hgcj-e-me", headers=_me()).status_code == 200
    assert client.get("/fhir/Encounter/hgcj-e-other", headers=_me()).status_code == 404
    assert client.get("/fhir/Patient/hgcj-other/_history/1", headers=_me()).status_code == 404


def test_a_patients_searches_and_history_hold_its_compartment_only(client: TestClient) -> None:
    _store()
    patients = client.get("/fhir/Patient", headers=_me()).json()
    assert _ids(patients) == {"hgcj-me"}
    assert patients["total"] == 1
    visits = client.get("/fhir/Encounter", params={"_include": "Encounter:subject"}, headers=_me())
    assert _ids(visits.json()) == {"hgcj-e-me", "hgcj-me"}
    history = client.get("/fhir/Encounter/_history", headers=_me()).json()
    assert _ids(history) == {"hgcj-e-me"}
    # the hospital's own system still sees both
    assert _ids(client.get("/fhir/Patient", headers=bearer()).json()) == {"hgcj-me", "hgcj-other"}
