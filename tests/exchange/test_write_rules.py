"""Business rules (422) and base invariants (400) on every write path: create, update,
patch, transaction and batch entries, and import lines, in the caller's language."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from exchange.models import StoredResource
from puente.db import session_factory
from tests.exchange.test_import_async import register_systems
from tests.factories import bearer, fhir_json, patient

HGCJ = bearer("system", "hgcj")
WRITE = {**HGCJ, **fhir_json()}
NEXT_YEAR = str(dt.datetime.now(dt.UTC).year + 1)


def _issue(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue: dict[str, Any] = body["issue"][0]
    return issue


def _stored() -> int:
    with session_factory()() as session:
        return session.scalar(select(func.count()).select_from(StoredResource)) or 0


def test_create_with_future_birth_date_is_422_in_english_and_spanish(client: TestClient) -> None:
    future = patient(birthDate=f"{NEXT_YEAR}-01-01")
    english = client.post("/fhir/Patient", json=future, headers=WRITE)
    assert english.status_code == 422
    issue = _issue(english)
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["Patient.birthDate"]
    assert issue["details"]["text"] == "Patient.birthDate lies in the future."
    spanish = client.post(
        "/fhir/Patient", json=future, headers={**WRITE, "Accept-Language": "es-MX"}
    )
    assert _issue(spanish)["details"]["text"] == "Patient.birthDate está en el futuro."
    assert NEXT_YEAR not in english.text
    assert _stored() == 0


def test_update_and_patch_keep_the_rules(client: TestClient) -> None:
    created = client.put("/fhir/Patient/hgcj-r1", json=patient(id="hgcj-r1"), headers=WRITE)
    assert created.status_code == 201
    dead_first = {**created.json(), "deceasedDateTime": "1980-01-01T00:00:00Z"}
    update = client.put("/fhir/Patient/hgcj-r1", json=dead_first, headers=WRITE)
    assert update.status_code == 422
    assert _issue(update)["expression"] == ["Patient.deceasedDateTime"]
    patch = client.patch(
        "/fhir/Patient/hgcj-r1",
        json=[{"op": "replace", "path": "/birthDate", "value": f"{NEXT_YEAR}-06-01"}],
        headers={**HGCJ, "Content-Type": "application/json-patch+json"},
    )
    assert patch.status_code == 422
    assert _issue(patch)["expression"] == ["Patient.birthDate"]
    read = client.get("/fhir/Patient/hgcj-r1", headers=HGCJ).json()
    assert read["meta"]["versionId"] == "1"
    assert read["birthDate"] == "1985-04-12"


def test_period_ending_before_it_starts_is_400_invariant(client: TestClient) -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "EMER"},
        "period": {"start": "2025-03-05T10:00:00-07:00", "end": "2025-03-05T09:00:00-07:00"},
    }
    response = client.post("/fhir/Encounter", json=encounter, headers=WRITE)
    assert response.status_code == 400
    issue = _issue(response)
    assert issue["code"] == "invariant"
    assert issue["expression"] == ["Encounter.period"]
    assert "per-1" in issue["details"]["text"]


def test_encounter_started_in_the_future_unless_planned(client: TestClient) -> None:
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).isoformat()
    encounter = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"code": "AMB"},
        "period": {"start": ahead},
    }
    started = client.post("/fhir/Encounter", json=encounter, headers=WRITE)
    assert started.status_code == 422
    assert _issue(started)["expression"] == ["Encounter.period.start"]
    planned = client.post("/fhir/Encounter", json={**encounter, "status": "planned"}, headers=WRITE)
    assert planned.status_code == 201


def test_transaction_entry_breaking_a_rule_stores_nothing(client: TestClient) -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "glucose"},
        "subject": {"reference": "urn:uuid:0d7f3e2a-1b4c-4d5e-8f90-a1b2c3d4e5f6"},
        "effectiveDateTime": f"{NEXT_YEAR}-02-01T08:00:00Z",
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0d7f3e2a-1b4c-4d5e-8f90-a1b2c3d4e5f6",
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": observation, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    response = client.post("/fhir", json=bundle, headers=WRITE)
    assert response.status_code == 422
    issue = _issue(response)
    assert issue["code"] == "business-rule"
    assert issue["expression"] == ["Bundle.entry[1].resource.effectiveDateTime"]
    assert _stored() == 0
    bundle["type"] = "batch"
    batch = client.post("/fhir", json=bundle, headers=WRITE).json()
    statuses = [e["response"]["status"] for e in batch["entry"]]
    assert statuses[1] == "422 Unprocessable Entity"
    assert batch["entry"][1]["response"]["outcome"]["issue"][0]["expression"] == [
        "Observation.effectiveDateTime"
    ]


def test_import_line_breaking_a_rule_is_rejected_with_the_same_message(
    client: TestClient,
) -> None:
    register_systems()
    lines = [
        json.dumps(patient(id="hgcj-i1")),
        json.dumps(patient(id="hgcj-i2", birthDate=f"{NEXT_YEAR}-01-01")),
        json.dumps(patient(birthDate=f"{NEXT_YEAR}-01-01")),
    ]
    started = client.post(
        "/fhir/$import",
        content=("\n".join(lines) + "\n").encode(),
        headers={**HGCJ, "Prefer": "respond-async", "Content-Type": "application/fhir+ndjson"},
    )
    status_path = started.headers["Content-Location"].removeprefix("http://testserver")
    manifest = client.get(status_path, headers=HGCJ).json()
    counts = manifest["extension"]["counts"]
    assert (counts["read"], counts["created"], counts["rejected"]) == (3, 1, 2)
    url = manifest["error"][0]["url"].removeprefix("http://testserver")
    outcomes = [json.loads(line) for line in client.get(url, headers=HGCJ).text.splitlines()]
    for number, outcome in zip((2, 3), outcomes, strict=True):
        issue = outcome["issue"][0]
        assert issue["diagnostics"] == f"line {number}: error.rule_in_future"
        assert issue["code"] == "business-rule"
        assert issue["expression"] == ["Patient.birthDate"]
        assert issue["details"]["text"] == "Patient.birthDate lies in the future."
