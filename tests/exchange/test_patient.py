"""Patients in the store: searchable by what clinicians use, visible to their own system only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from exchange import store
from puente.db import session_factory
from tests.factories import bearer

JOSE = {
    "resourceType": "Patient",
    "id": "hgcj-1001",
    "identifier": [{"system": "https://www.gob.mx/curp", "value": "RAAL850412HCHMNS01"}],
    "name": [{"family": "Ramírez Anchondo", "given": ["José", "Luis"]}],
    "gender": "male",
    "birthDate": "1985-04-12",
    "address": [{"city": "Ciudad Juárez"}],
}


def _store_jose() -> None:
    with session_factory()() as session:
        store.put(session, owner="hgcj", owner_country="MX", resource=dict(JOSE))
        session.commit()


def _ids(body: dict[str, object]) -> list[str]:
    entries = body.get("entry", [])
    assert isinstance(entries, list)
    return [e["resource"]["id"] for e in entries]


def test_name_search_folds_accents(client: TestClient) -> None:
    _store_jose()
    for params in (
        {"name": "jose"},
        {"family": "ramirez"},
        {"given": "LUIS"},
        {"birthdate": "1985-04"},
        {"identifier": "https://www.gob.mx/curp|RAAL850412HCHMNS01"},
        {"gender": "male", "address-city": "ciudad juarez"},
    ):
        response = client.get("/fhir/Patient", params=params, headers=bearer())
        assert response.status_code == 200, params
        assert _ids(response.json()) == ["hgcj-1001"], params
    miss = client.get("/fhir/Patient", params={"birthdate": "1985-12"}, headers=bearer())
    assert _ids(miss.json()) == []


def test_another_system_sees_nothing(client: TestClient) -> None:
    _store_jose()
    other = bearer("system", "umcep")
    assert client.get("/fhir/Patient/hgcj-1001", headers=other).status_code == 404
    found = client.get("/fhir/Patient", params={"name": "jose"}, headers=other).json()
    assert found["total"] == 0
    assert client.get("/fhir/Patient/hgcj-1001", headers=bearer()).status_code == 200
