"""Conditional create, update and delete (own system only) and JSON Patch."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.factories import bearer, fhir_json, patient

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
CURP = "https://www.gob.mx/curp"


def _with_curp(value: str, **fields: Any) -> dict[str, Any]:
    return patient(identifier=[{"system": CURP, "value": value}], **fields)


def _post(client: TestClient, body: dict[str, Any], headers: dict[str, str], **extra: str) -> Any:
    return client.post("/fhir/Patient", json=body, headers={**headers, **fhir_json(), **extra})


def test_conditional_create_returns_the_existing_one(client: TestClient) -> None:
    condition = {"If-None-Exist": f"identifier={CURP}|RAAJ850412HCHMNS05"}
    first = _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ, **condition)
    assert first.status_code == 201
    second = _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ, **condition)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["etag"] == 'W/"1"'
    _post(client, _with_curp("RAAJ850412HCHMNS05", gender="female"), HGCJ)
    several = _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ, **condition)
    assert several.status_code == 412


def test_conditional_create_does_not_see_another_systems_match(client: TestClient) -> None:
    condition = {"If-None-Exist": f"identifier={CURP}|RAAJ850412HCHMNS05"}
    theirs = _post(client, _with_curp("RAAJ850412HCHMNS05"), UMCEP, **condition)
    assert theirs.status_code == 201
    ours = _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ, **condition)
    assert ours.status_code == 201
    assert ours.json()["id"] != theirs.json()["id"]
    assert ours.json()["meta"]["source"] == "urn:puente:source:mx:hgcj"


def test_conditional_update(client: TestClient) -> None:
    query = f"/fhir/Patient?identifier={CURP}|RAAJ850412HCHMNS05"
    theirs = _post(client, _with_curp("RAAJ850412HCHMNS05"), UMCEP).json()
    created = client.put(
        query, json=_with_curp("RAAJ850412HCHMNS05"), headers={**HGCJ, **fhir_json()}
    )
    assert created.status_code == 201
    assert created.json()["id"] != theirs["id"]
    updated = client.put(
        query,
        json=_with_curp("RAAJ850412HCHMNS05", gender="female"),
        headers={**HGCJ, **fhir_json()},
    )
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"
    _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ)
    several = client.put(
        query, json=_with_curp("RAAJ850412HCHMNS05"), headers={**HGCJ, **fhir_json()}
    )
    assert several.status_code == 412
    no_criteria = client.put("/fhir/Patient", json=patient(), headers={**HGCJ, **fhir_json()})
    assert no_criteria.status_code == 400


def test_conditional_delete(client: TestClient) -> None:
    query = f"/fhir/Patient?identifier={CURP}|RAAJ850412HCHMNS05"
    theirs = _post(client, _with_curp("RAAJ850412HCHMNS05"), UMCEP).json()
    assert client.delete(query, headers=HGCJ).status_code == 404
    ours = _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ).json()
    assert client.delete(query, headers=HGCJ).status_code == 204
    assert client.get(f"/fhir/Patient/{ours['id']}", headers=HGCJ).status_code == 410
    assert client.get(f"/fhir/Patient/{theirs['id']}", headers=UMCEP).status_code == 200
    _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ)
    _post(client, _with_curp("RAAJ850412HCHMNS05"), HGCJ)
    assert client.delete(query, headers=HGCJ).status_code == 412


PATCH = {"Content-Type": "application/json-patch+json"}


def _patch(client: TestClient, url: str, operations: Any, **headers: str) -> Any:
    return client.patch(url, json=operations, headers={**HGCJ, **PATCH, **headers})


def test_json_patch(client: TestClient) -> None:
    created = _post(client, patient(), HGCJ).json()
    url = f"/fhir/Patient/{created['id']}"
    response = _patch(client, url, [{"op": "replace", "path": "/gender", "value": "female"}])
    assert response.status_code == 200
    assert response.json()["gender"] == "female"
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    stale = _patch(client, url, [{"op": "remove", "path": "/gender"}], **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    history = client.get(f"{url}/_history", headers=HGCJ).json()
    assert history["entry"][0]["request"]["method"] == "PATCH"


def test_patch_failures(client: TestClient) -> None:
    created = _post(client, patient(), HGCJ).json()
    url = f"/fhir/Patient/{created['id']}"
    for path in ("/id", "/resourceType"):
        refused = _patch(client, url, [{"op": "replace", "path": path, "value": "x"}])
        assert refused.status_code == 400, path
    invalid = _patch(client, url, [{"op": "replace", "path": "/birthDate", "value": "soon"}])
    assert invalid.status_code == 400
    assert "Patient.birthDate" in invalid.json()["issue"][0]["expression"]
    missing = _patch(client, url, [{"op": "remove", "path": "/telecom/3"}])
    assert missing.status_code == 400
    assert _patch(client, url, {"op": "replace"}).status_code == 400
    as_fhir = client.patch(url, json=[], headers={**HGCJ, **fhir_json()})
    assert as_fhir.status_code == 415
    assert client.get(url, headers=HGCJ).json()["meta"]["versionId"] == "1"
