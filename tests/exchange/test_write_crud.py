"""Create, update and create-by-PUT over HTTP: ids, ownership, versions, Prefer, validation."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.factories import bearer, fhir_json, patient

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")


def _create(client: TestClient, resource: dict[str, Any], headers: dict[str, str] = HGCJ) -> Any:
    return client.post(
        f"/fhir/{resource['resourceType']}", json=resource, headers={**headers, **fhir_json()}
    )


def test_create_assigns_uuid_and_versions(client: TestClient) -> None:
    response = _create(client, patient(id="client-chosen", meta={"versionId": "9"}))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"
    assert len(body["id"]) == 36
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["source"] == "urn:puente:source:mx:hgcj"
    assert response.headers["etag"] == 'W/"1"'
    assert "GMT" in response.headers["last-modified"]
    assert response.headers["location"] == (
        f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    )
    read = client.get(f"/fhir/Patient/{body['id']}", headers=HGCJ)
    assert read.status_code == 200
    assert read.json()["name"] == body["name"]


def test_update_bumps_version_and_identical_update_does_not(client: TestClient) -> None:
    created = _create(client, patient()).json()
    url = f"/fhir/Patient/{created['id']}"
    changed = {**created, "gender": "other"}
    first = client.put(url, json=changed, headers={**HGCJ, **fhir_json()})
    assert first.status_code == 200
    assert first.json()["meta"]["versionId"] == "2"
    assert first.headers["etag"] == 'W/"2"'
    again = client.put(url, json=changed, headers={**HGCJ, **fhir_json()})
    assert again.status_code == 200
    assert again.headers["etag"] == 'W/"2"'
    assert client.get(f"{url}/_history/1", headers=HGCJ).json()["gender"] == "male"


def test_if_match_mismatch_is_412(client: TestClient) -> None:
    created = _create(client, patient()).json()
    url = f"/fhir/Patient/{created['id']}"
    stale = client.put(
        url,
        json={**created, "gender": "other"},
        headers={**HGCJ, **fhir_json(), "If-Match": 'W/"7"'},
    )
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"
    fresh = client.put(
        url,
        json={**created, "gender": "other"},
        headers={**HGCJ, **fhir_json(), "If-Match": 'W/"1"'},
    )
    assert fresh.status_code == 200


def test_create_by_put_inside_namespace(client: TestClient) -> None:
    response = client.put(
        "/fhir/Patient/hgcj-12345",
        json=patient(id="hgcj-12345"),
        headers={**HGCJ, **fhir_json()},
    )
    assert response.status_code == 201
    assert response.headers["location"].endswith("/fhir/Patient/hgcj-12345/_history/1")
    assert client.get("/fhir/Patient/hgcj-12345", headers=HGCJ).status_code == 200


def test_put_outside_namespace_is_the_same_400_whether_or_not_it_exists(
    client: TestClient,
) -> None:
    theirs = client.put(
        "/fhir/Patient/umcep-1", json=patient(id="umcep-1"), headers={**UMCEP, **fhir_json()}
    )
    assert theirs.status_code == 201
    existing = client.put(
        "/fhir/Patient/umcep-1", json=patient(id="umcep-1"), headers={**HGCJ, **fhir_json()}
    )
    missing = client.put(
        "/fhir/Patient/umcep-2", json=patient(id="umcep-2"), headers={**HGCJ, **fhir_json()}
    )
    no_prefix = client.put(
        "/fhir/Patient/12345", json=patient(id="12345"), headers={**HGCJ, **fhir_json()}
    )
    assert existing.status_code == missing.status_code == no_prefix.status_code == 400
    assert existing.json()["issue"] == missing.json()["issue"] == no_prefix.json()["issue"]
    assert client.get("/fhir/Patient/umcep-1", headers=UMCEP).json()["meta"]["versionId"] == "1"


def test_another_systems_resource_is_404_like_a_missing_one(client: TestClient) -> None:
    created = _create(client, patient(), UMCEP).json()
    url = f"/fhir/Patient/{created['id']}"
    assert client.get(url, headers=HGCJ).status_code == 404
    assert client.get(f"{url}/_history/1", headers=HGCJ).status_code == 404
    assert client.get(f"{url}/_history", headers=HGCJ).status_code == 404
    assert client.delete(url, headers=HGCJ).status_code == 404
    patch = client.patch(
        url,
        content=b'[{"op": "replace", "path": "/gender", "value": "other"}]',
        headers={**HGCJ, "Content-Type": "application/json-patch+json"},
    )
    assert patch.status_code == 404
    missing = client.delete("/fhir/Patient/does-not-exist", headers=HGCJ)
    assert missing.status_code == 404
    assert client.get(url, headers=UMCEP).json()["meta"]["versionId"] == "1"


def test_invalid_resource_names_the_element(client: TestClient) -> None:
    response = _create(client, patient(birthDate="not-a-date", favouriteColour="blue"))
    assert response.status_code == 400
    body = response.json()
    expressions = {e for issue in body["issue"] for e in issue.get("expression", [])}
    assert {"Patient.birthDate", "Patient.favouriteColour"} <= expressions, expressions
    assert "not-a-date" not in response.text
    assert "blue" not in response.text


def test_wrong_type_missing_or_mismatched_id_are_400(client: TestClient) -> None:
    wrong = client.post("/fhir/Observation", json=patient(), headers={**HGCJ, **fhir_json()})
    assert wrong.status_code == 400
    body_id = client.put(
        "/fhir/Patient/hgcj-1", json=patient(id="hgcj-2"), headers={**HGCJ, **fhir_json()}
    )
    assert body_id.status_code == 400
    no_id = client.put("/fhir/Patient/hgcj-1", json=patient(), headers={**HGCJ, **fhir_json()})
    assert no_id.status_code == 400
    bad_id = client.put(
        "/fhir/Patient/hgcj_1!", json=patient(id="hgcj_1!"), headers={**HGCJ, **fhir_json()}
    )
    assert bad_id.status_code == 400


def test_body_must_be_json(client: TestClient) -> None:
    xml = client.post(
        "/fhir/Patient",
        content=b"<Patient xmlns='http://hl7.org/fhir'/>",
        headers={**HGCJ, "Content-Type": "application/fhir+xml"},
    )
    assert xml.status_code == 415
    broken = client.post(
        "/fhir/Patient", content=b'{"resourceType": ', headers={**HGCJ, **fhir_json()}
    )
    assert broken.status_code == 400
    plain = client.post(
        "/fhir/Patient", json=patient(), headers={**HGCJ, "Content-Type": "application/json"}
    )
    assert plain.status_code == 201


def test_people_and_read_only_scopes_cannot_write(client: TestClient) -> None:
    clinician = bearer("clinician", "hgcj", subject="dr", fhir_user="Practitioner/dr")
    assert _create(client, patient(), clinician).status_code == 403
    read_only = bearer("system", "hgcj", scope="system/*.rs")
    assert _create(client, patient(), read_only).status_code == 403


def test_prefer_return(client: TestClient) -> None:
    minimal = client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**HGCJ, **fhir_json(), "Prefer": "return=minimal"},
    )
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["location"]
    outcome = client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**HGCJ, **fhir_json(), "Prefer": "return=OperationOutcome"},
    )
    assert outcome.status_code == 201
    issue = outcome.json()["issue"][0]
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert issue["severity"] == "information"
    representation = client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**HGCJ, **fhir_json(), "Prefer": "return=representation"},
    )
    assert representation.json()["resourceType"] == "Patient"


def test_organization_is_writable_by_its_owner_only(client: TestClient) -> None:
    from puente.db import session_factory
    from tests.factories import organizations

    with session_factory()() as session:
        organizations(session)
        session.commit()
    own = client.get("/fhir/Organization/hgcj", headers=HGCJ).json()
    renamed = {**own, "alias": ["HGCJ"]}
    assert (
        client.put(
            "/fhir/Organization/hgcj", json=renamed, headers={**HGCJ, **fhir_json()}
        ).status_code
        == 200
    )
    other = client.put("/fhir/Organization/hgcj", json=renamed, headers={**UMCEP, **fhir_json()})
    assert other.status_code == 400
    assert client.delete("/fhir/Organization/hgcj", headers=UMCEP).status_code == 403


def test_writes_are_audited_with_the_patient(client: TestClient) -> None:
    from sqlalchemy import select

    from puente.audit.models import AuditEntry
    from puente.db import session_factory

    created = _create(client, patient()).json()
    reference = f"Patient/{created['id']}"
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "pulse"},
        "subject": {"reference": reference},
    }
    assert _create(client, observation).status_code == 201
    with session_factory()() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.subtype == "create")).all()
        assert {r.action for r in rows} == {"C"}
        assert all(r.patients == [reference] for r in rows)
        assert any(r.entities == [reference] for r in rows)
