"""POST /fhir: transaction Bundles are all or nothing, batch entries stand alone."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import bearer

CURP = "https://www.gob.mx/curp"


def _post(client: TestClient, bundle: dict[str, Any], **headers: str) -> Any:
    return client.post(
        "/fhir",
        content=json.dumps(bundle),
        headers={**bearer(), "Content-Type": "application/fhir+json", **headers},
    )


def _patient(value: str = "RAAL850412HCHMNS01") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": CURP, "value": value}],
        "name": [{"family": "Ramírez Anchondo", "given": ["José", "Luis"]}],
    }


def _visit(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": subject},
    }


def _transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_urn_uuid_references_resolve_across_entries(client: TestClient) -> None:
    bundle = _transaction(
        {
            "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
            "resource": _visit("urn:uuid:2d7bd3a6-0000-4000-8000-000000000001"),
            "request": {"method": "POST", "url": "Encounter"},
        },
        {
            "fullUrl": "urn:uuid:2d7bd3a6-0000-4000-8000-000000000001",
            "resource": _patient(),
            "request": {"method": "POST", "url": "Patient"},
        },
    )
    response = _post(client, bundle)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    encounter, patient = (e["resource"] for e in result["entry"])
    assert encounter["subject"]["reference"] == f"Patient/{patient['id']}"
    assert result["entry"][1]["response"]["location"].startswith(
        f"Patient/{patient['id']}/_history/1"
    )
    assert result["entry"][1]["response"]["etag"] == 'W/"1"'
    stored = client.get(f"/fhir/Encounter/{encounter['id']}", headers=bearer()).json()
    assert stored["subject"]["reference"] == f"Patient/{patient['id']}"


def test_one_bad_entry_stores_nothing_and_is_named(client: TestClient) -> None:
    bad_patient = {**_patient(), "birthDate": "yesterday"}
    bundle = _transaction(
        {
            "resource": _patient("GOXP700707HNEMXD09"),
            "request": {"method": "POST", "url": "Patient"},
        },
        {"resource": bad_patient, "request": {"method": "POST", "url": "Patient"}},
    )
    response = _post(client, bundle)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(
        expression.startswith("Bundle.entry[1]")
        for issue in outcome["issue"]
        for expression in issue.get("expression", [])
    )
    assert "yesterday" not in response.text
    found = client.get("/fhir/Patient", params={"_summary": "count"}, headers=bearer()).json()
    assert found["total"] == 0


def test_conditional_create_and_conditional_reference_use_own_records(
    client: TestClient,
) -> None:
    created = _post(
        client,
        _transaction({"resource": _patient(), "request": {"method": "POST", "url": "Patient"}}),
    ).json()["entry"][0]["resource"]
    bundle = _transaction(
        {
            "fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000002",
            "resource": _patient(),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={CURP}|RAAL850412HCHMNS01",
            },
        },
        {
            "resource": _visit(f"Patient?identifier={CURP}|RAAL850412HCHMNS01"),
            "request": {"method": "POST", "url": "Encounter"},
        },
    )
    result = _post(client, bundle).json()
    assert result["entry"][0]["response"]["status"] == "200 OK"
    assert result["entry"][0]["resource"]["id"] == created["id"]
    assert result["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{created['id']}"
    # Another hospital's conditional reference does not see HGCJ's patient.
    other = client.post(
        "/fhir",
        content=json.dumps(
            _transaction(
                {
                    "resource": _visit(f"Patient?identifier={CURP}|RAAL850412HCHMNS01"),
                    "request": {"method": "POST", "url": "Encounter"},
                }
            )
        ),
        headers={**bearer("system", "umcep"), "Content-Type": "application/fhir+json"},
    )
    assert other.status_code == 404


def test_processing_order_and_versions(client: TestClient) -> None:
    first = _post(
        client,
        _transaction(
            {
                "resource": {**_patient(), "id": "hgcj-42"},
                "request": {"method": "PUT", "url": "Patient/hgcj-42"},
            },
            {
                "resource": {**_patient("GOXP700707HNEMXD09"), "id": "hgcj-43"},
                "request": {"method": "PUT", "url": "Patient/hgcj-43"},
            },
        ),
    )
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201 Created"] * 2
    patch = [{"op": "add", "path": "/gender", "value": "male"}]
    second = _post(
        client,
        _transaction(
            {"request": {"method": "GET", "url": "Patient/hgcj-42"}},
            {
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "application/json-patch+json",
                    "data": base64.b64encode(json.dumps(patch).encode()).decode(),
                },
                "request": {"method": "PATCH", "url": "Patient/hgcj-42"},
            },
            {"request": {"method": "DELETE", "url": "Patient/hgcj-43"}},
        ),
    )
    assert second.status_code == 200, second.text
    read, patched, deleted = second.json()["entry"]
    # GET runs last: it sees the patch made in the same transaction
    assert read["resource"]["gender"] == "male"
    assert patched["response"]["etag"] == 'W/"2"'
    assert deleted["response"]["status"] == "204 No Content"
    assert client.get("/fhir/Patient/hgcj-43", headers=bearer()).status_code == 410
    stale = _post(
        client,
        _transaction(
            {
                "resource": {**_patient(), "id": "hgcj-42"},
                "request": {"method": "PUT", "url": "Patient/hgcj-42", "ifMatch": 'W/"1"'},
            },
        ),
    )
    assert stale.status_code == 412


def test_batch_entries_stand_alone(client: TestClient) -> None:
    bundle = _transaction(
        {"resource": _patient(), "request": {"method": "POST", "url": "Patient"}},
        {
            "resource": {"resourceType": "Patient", "gender": 7},
            "request": {"method": "POST", "url": "Patient"},
        },
        {"request": {"method": "GET", "url": "Patient/umcep-not-yours"}},
        kind="batch",
    )
    response = _post(client, bundle)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "404 Not Found"]
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    found = client.get("/fhir/Patient", params={"_summary": "count"}, headers=bearer()).json()
    assert found["total"] == 1


def test_batch_conditional_update(client: TestClient) -> None:
    entry = {
        "resource": {**_patient(), "gender": "female"},
        "request": {"method": "PUT", "url": f"Patient?identifier={CURP}|RAAL850412HCHMNS01"},
    }
    first = _post(client, _transaction(entry, kind="batch")).json()["entry"][0]
    assert first["response"]["status"] == "201 Created"
    second = _post(client, _transaction(entry, kind="batch")).json()["entry"][0]
    assert second["response"]["status"] == "200 OK"
    assert second["resource"]["id"] == first["resource"]["id"]


def test_prefer_minimal_and_wrong_bundles(client: TestClient) -> None:
    minimal = _post(
        client,
        _transaction({"resource": _patient(), "request": {"method": "POST", "url": "Patient"}}),
        Prefer="return=minimal",
    )
    assert "resource" not in minimal.json()["entry"][0]
    assert minimal.json()["entry"][0]["response"]["location"].startswith("Patient/")
    collection = _post(client, {"resourceType": "Bundle", "type": "collection"})
    assert collection.status_code == 400
    not_bundle = _post(client, _patient())
    assert not_bundle.status_code == 400
    unresolved = _post(
        client,
        _transaction(
            {
                "resource": _visit("urn:uuid:00000000-0000-4000-8000-00000000dead"),
                "request": {"method": "POST", "url": "Encounter"},
            }
        ),
    )
    assert unresolved.status_code == 400


def test_conditional_update_creates_then_updates(client: TestClient) -> None:
    def conditional_put(gender: str) -> Any:
        return _post(
            client,
            _transaction(
                {
                    "fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000003",
                    "resource": {**_patient(), "gender": gender},
                    "request": {
                        "method": "PUT",
                        "url": f"Patient?identifier={CURP}|RAAL850412HCHMNS01",
                    },
                },
                {
                    "resource": _visit("urn:uuid:c0000000-0000-4000-8000-000000000003"),
                    "request": {"method": "POST", "url": "Encounter"},
                },
            ),
        )

    first = conditional_put("male")
    assert first.status_code == 200, first.text
    created = first.json()["entry"][0]
    assert created["response"]["status"] == "201 Created"
    patient_id = created["resource"]["id"]
    assert first.json()["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    second = conditional_put("other").json()["entry"][0]
    assert second["response"]["status"] == "200 OK"
    assert second["resource"]["id"] == patient_id
    assert second["response"]["etag"] == 'W/"2"'


def test_later_entries_see_what_the_bundles_creates_wrote(client: TestClient) -> None:
    """Creates are written together, and the searches that run after them (R4 3.1.0.11.2:
    reads come last) find them, through a chain too."""
    curp = "GOXP700707HNEMXD09"
    result = _post(
        client,
        _transaction(
            {"request": {"method": "GET", "url": f"Patient?identifier={CURP}|{curp}"}},
            {
                "fullUrl": "urn:uuid:0f0e0d0c-0000-4000-8000-000000000001",
                "resource": _patient(curp),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": _visit("urn:uuid:0f0e0d0c-0000-4000-8000-000000000001"),
                "request": {"method": "POST", "url": "Encounter"},
            },
            {"request": {"method": "GET", "url": "Encounter?subject:Patient.name=ramirez"}},
        ),
    )
    assert result.status_code == 200, result.text
    search, created, visit, chained = result.json()["entry"]
    assert [e["resource"]["id"] for e in search["resource"]["entry"]] == [created["resource"]["id"]]
    assert [e["resource"]["id"] for e in chained["resource"]["entry"]] == [visit["resource"]["id"]]
    by_name = client.get("/fhir/Patient", params={"name": "ramirez"}, headers=bearer()).json()
    assert [e["resource"]["id"] for e in by_name["entry"]] == [created["resource"]["id"]]
