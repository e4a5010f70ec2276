"""`POST /fhir/$import` in-process (no broker): the task runs right after the kick-off
commits, so the first status call already finds the job complete."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.operationdefinition import OperationDefinition
from sqlalchemy import func, select

from demo.generator import generate
from exchange.models import ImportJob, StoredResource
from puente.audit.models import AuditEntry
from puente.db import session_factory
from puente.settings import get_settings
from tests.factories import bearer

NDJSON = "application/fhir+ndjson"
ASYNC = {"Prefer": "respond-async", "Content-Type": NDJSON}


def register_systems() -> None:
    """Both hospital systems and their Organizations, committed."""
    from exchange import service as exchange
    from puente.auth import service as auth

    with session_factory()() as session:
        for code, name, country in (("hgcj", "HGCJ", "MX"), ("umcep", "UMC", "US")):
            auth.add_system(session, code=code, name=name, country=country)
            exchange.register_hospital_organization(session, code=code, name=name, country=country)
        session.commit()


def _ndjson(resources: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in resources).encode("utf-8")


def _kick_off(client: TestClient, body: bytes, org: str = "hgcj", **headers: str) -> Any:
    return client.post(
        "/fhir/$import", content=body, headers={**bearer("system", org), **ASYNC, **headers}
    )


def _status_path(response: Any) -> str:
    location = response.headers["Content-Location"]
    assert location.startswith("http://testserver/fhir/$import-status/")
    return str(location.removeprefix("http://testserver"))


def _records(count: int = 10) -> list[dict[str, Any]]:
    scenario = generate(patients_per_hospital=count, seed=11)
    return list(scenario.records["hgcj"])


def test_kick_off_then_status_reports_counts(client: TestClient) -> None:
    register_systems()
    records = _records()
    started = _kick_off(client, _ndjson(records))
    assert started.status_code == 202, started.text
    assert started.json()["resourceType"] == "OperationOutcome"
    assert started.json()["issue"][0]["severity"] == "information"
    status = client.get(_status_path(started), headers=bearer())
    assert status.status_code == 200, status.text
    manifest = status.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == "http://testserver/fhir/$import"
    assert manifest["error"] == []
    n = len(records)
    assert manifest["extension"] == {
        "status": "completed",
        "counts": {
            "lines": n,
            "read": n,
            "created": n,
            "updated": 0,
            "unchanged": 0,
            "rejected": 0,
        },
    }
    patients = client.get("/fhir/Patient", params={"_summary": "count"}, headers=bearer())
    assert patients.json()["total"] == 10
    with session_factory()() as session:
        job = session.scalars(select(ImportJob)).one()
        assert job.payload is None  # the copy is dropped once the data is in the store
        audited = session.scalars(select(AuditEntry).where(AuditEntry.subtype == "import")).all()
        assert audited
        assert {row.agent for row in audited} == {"hgcj-client"}
        # each batch's row names what it wrote and whose records they are
        named = {reference for row in audited for reference in row.entities}
        concerned = {reference for row in audited for reference in row.patients}
        patient = next(r for r in records if r["resourceType"] == "Patient")
        encounter = next(r for r in records if r["resourceType"] == "Encounter")
        assert {f"Patient/{patient['id']}", f"Encounter/{encounter['id']}"} <= named
        assert f"Patient/{patient['id']}" in concerned
        assert encounter["subject"]["reference"] in concerned
        kicked = session.scalars(
            select(AuditEntry).where(AuditEntry.subtype == "operation", AuditEntry.action == "C")
        ).one()
        assert kicked.entities == [f"$import/{job.id}"]


def test_posting_the_same_ndjson_again_leaves_one_copy(client: TestClient) -> None:
    register_systems()
    records = _records(5)
    body = _ndjson(records)
    _kick_off(client, body)
    again = _kick_off(client, body)
    counts = client.get(_status_path(again), headers=bearer()).json()["extension"]["counts"]
    assert counts["unchanged"] == len(records)
    assert counts["created"] == counts["updated"] == 0
    with session_factory()() as session:
        stored = session.scalar(
            select(func.count())
            .select_from(StoredResource)
            .where(StoredResource.owner == "hgcj", StoredResource.res_type != "Organization")
        )
    assert stored == len(records)  # the hospital's own Organization was registered before


def test_rejected_lines_are_listed_by_number_without_content(client: TestClient) -> None:
    register_systems()
    lines = [
        json.dumps({"resourceType": "Patient", "id": "hgcj-good-1", "gender": "female"}),
        "{not json",
        json.dumps({"resourceType": "Patient", "id": "umcep-theirs"}),
        "",
        json.dumps({"resourceType": "Patient", "id": "hgcj-bad", "birthDate": "soon"}),
        json.dumps({"resourceType": "Patient", "id": "hgcj-good-2", "gender": "male"}),
    ]
    started = _kick_off(client, ("\n".join(lines) + "\n").encode())
    manifest = client.get(_status_path(started), headers=bearer()).json()
    counts = manifest["extension"]["counts"]
    assert (counts["read"], counts["created"], counts["rejected"]) == (5, 2, 3)
    [error] = manifest["error"]
    assert error["type"] == "OperationOutcome"
    errors = client.get(error["url"].removeprefix("http://testserver"), headers=bearer())
    assert errors.status_code == 200
    assert errors.headers["content-type"].startswith(NDJSON)
    outcomes = [json.loads(line) for line in errors.text.splitlines()]
    assert [o["resourceType"] for o in outcomes] == ["OperationOutcome"] * 3
    named = [o["issue"][0]["diagnostics"].split(":")[0] for o in outcomes]
    assert named == ["line 2", "line 3", "line 5"]
    for secret in ("soon", "not json", "umcep-theirs"):
        assert secret not in errors.text


def test_another_system_cannot_see_the_job(client: TestClient) -> None:
    register_systems()
    started = _kick_off(client, _ndjson(_records(2)))
    path = _status_path(started)
    assert client.get(path, headers=bearer("system", "umcep")).status_code == 404
    assert client.get(f"{path}/errors", headers=bearer("system", "umcep")).status_code == 404
    assert client.delete(path, headers=bearer("system", "umcep")).status_code == 404
    clinician = bearer("clinician", "hgcj", subject="Practitioner/hgcj-1")
    assert client.get(path, headers=clinician).status_code == 404
    assert client.get(path, headers=bearer()).status_code == 200
    assert client.get("/fhir/$import-status/nope", headers=bearer()).status_code == 404


def test_kick_off_refusals(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    register_systems()
    body = _ndjson(_records(1))
    wrong_type = _kick_off(client, body, **{"Content-Type": "application/fhir+json"})
    assert wrong_type.status_code == 415
    no_prefer = client.post(
        "/fhir/$import", content=body, headers={**bearer(), "Content-Type": NDJSON}
    )
    assert no_prefer.status_code == 400
    assert no_prefer.json()["issue"][0]["diagnostics"] == "error.import_respond_async"
    assert _kick_off(client, b"\n\n").status_code == 400
    assert _kick_off(client, b"\xff\xfe{}").status_code == 400
    clinician = bearer("clinician", "hgcj", subject="Practitioner/hgcj-1")
    refused = client.post("/fhir/$import", content=body, headers={**clinician, **ASYNC})
    assert refused.status_code == 403
    assert client.post("/fhir/$import", content=body, headers=ASYNC).status_code == 401
    monkeypatch.setenv("PUENTE_IMPORT_MAX_BYTES", "100")
    get_settings.cache_clear()
    too_large = _kick_off(client, b'{"resourceType": "Patient"}\n' * 10)
    assert too_large.status_code == 413
    assert too_large.json()["resourceType"] == "OperationOutcome"
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_cancelled_job_answers_404(client: TestClient) -> None:
    register_systems()
    path = _status_path(_kick_off(client, _ndjson(_records(1))))
    assert client.delete(path, headers=bearer()).status_code == 202
    assert client.get(path, headers=bearer()).status_code == 404


def test_operation_is_declared_and_defined(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    operations = {op["name"]: op["definition"] for op in statement["rest"][0]["operation"]}
    assert operations["import"] == "http://testserver/fhir/OperationDefinition/import"
    assert client.get("/fhir/OperationDefinition/import").status_code == 401
    served = client.get("/fhir/OperationDefinition/import", headers=bearer())
    assert served.status_code == 200
    definition = OperationDefinition.model_validate(served.json())
    assert definition.code == "import"
    assert definition.url == operations["import"]
    assert {p.name for p in definition.parameter or []} == {"input", "return"}
