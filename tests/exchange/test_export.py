"""`$export` over HTTP (FHIR Bulk Data 2.0), filtered by the disclosure gate (issue 6).

In-process (no broker): the task runs right after the kick-off commits, so the first
status call finds the export complete. Each test builds the two hospitals' Organizations;
Juárez patient `hgcj-p1` with a plain Condition (`hgcj-c-asthma`) and a depression one
(`hgcj-c-psy`, labelled PSY at ingest); El Paso patient `umcep-p9` with a Condition.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.operationdefinition import OperationDefinition
from sqlalchemy import func, select, update

from exchange.models import ExportChunk, ExportJob
from exchange.resources import STORE_TYPES
from puente.audit.models import AuditEntry
from puente.db import session_factory
from puente.settings import get_settings
from tests.consent.builders import consent_json, provision
from tests.factories import bearer, condition, fhir_json, organizations, patient, put_resource

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
OFFICER = bearer("consent-officer", "hgcj")
DOCTOR = bearer("clinician", "umcep", fhir_user="Practitioner/umcep-dr-ruiz")
OTHER_DOCTOR = bearer(
    "clinician", "umcep", subject="dr-lee@umcep", fhir_user="Practitioner/umcep-dr-lee"
)
JUAREZ_PATIENT = "hgcj-p1"
ASTHMA, DEPRESSION = "hgcj-c-asthma", "hgcj-c-psy"
EL_PASO_PATIENT, EL_PASO_CONDITION = "umcep-p9", "umcep-c-flu"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
BASE = "http://testserver"


@pytest.fixture
def records(client: TestClient) -> None:
    with session_factory()() as session:
        organizations(session)
        session.commit()
    put_resource(client, patient(id=JUAREZ_PATIENT), HGCJ)
    put_resource(client, condition(ASTHMA, JUAREZ_PATIENT, "J45.9"), HGCJ)
    put_resource(client, condition(DEPRESSION, JUAREZ_PATIENT, "F32.9"), HGCJ)
    put_resource(client, patient(id=EL_PASO_PATIENT, name=[{"family": "Smith"}]), UMCEP)
    put_resource(client, condition(EL_PASO_CONDITION, EL_PASO_PATIENT, "J10.1"), UMCEP)


def _share(client: TestClient, status: str = "active") -> None:
    """Juana's Consent: the United States' hospitals, for treatment (not PSY records)."""
    resource = consent_json(
        provision("permit", to=["us"], purposes=["TREAT"]),
        cid="hgcj-consent-1",
        patient=JUAREZ_PATIENT,
        status=status,
    )
    put_resource(client, resource, OFFICER)


def _kick_off(client: TestClient, path: str, headers: dict[str, str], **extra: str) -> Any:
    return client.get(f"/fhir/{path}", headers={**headers, **ASYNC, **extra})


def _status_path(response: Any) -> str:
    assert response.status_code == 202, response.text
    location = response.headers["Content-Location"]
    assert location.startswith(f"{BASE}/fhir/$export-status/")
    return str(location.removeprefix(BASE))


def _manifest(client: TestClient, status_path: str, headers: dict[str, str]) -> Any:
    response = client.get(status_path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _download(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(url.removeprefix(BASE), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line]


def _export(
    client: TestClient, path: str, headers: dict[str, str], **extra: str
) -> dict[str, list[dict[str, Any]]]:
    """Kick off, poll, download: the resources of each type."""
    manifest = _manifest(client, _status_path(_kick_off(client, path, headers, **extra)), headers)
    found: dict[str, list[dict[str, Any]]] = {}
    for output in manifest["output"]:
        found.setdefault(output["type"], []).extend(_download(client, output["url"], headers))
    return found


def _ids(found: dict[str, list[dict[str, Any]]], resource_type: str) -> list[str]:
    return sorted(r["id"] for r in found.get(resource_type, []))


def test_the_async_flow_gives_a_manifest_and_ndjson_that_parses_as_fhir(
    client: TestClient, records: None
) -> None:
    started = _kick_off(client, "$export", HGCJ)
    assert started.json()["resourceType"] == "OperationOutcome"
    assert started.json()["issue"][0]["severity"] == "information"
    manifest = _manifest(client, _status_path(started), HGCJ)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == f"{BASE}/fhir/$export"
    assert manifest["error"] == []
    transaction_time = dt.datetime.fromisoformat(manifest["transactionTime"])
    assert transaction_time <= dt.datetime.now(dt.UTC)
    outputs = {o["type"]: o for o in manifest["output"]}
    assert set(outputs) == {"Condition", "Organization", "Patient"}
    assert outputs["Condition"]["count"] == 2
    for output in manifest["output"]:
        assert output["url"].startswith(f"{BASE}/fhir/$export-file/")
        lines = _download(client, output["url"], HGCJ)
        assert len(lines) == output["count"]
        for resource in lines:
            assert resource["resourceType"] == output["type"]
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    # The PSY label the consent module put on the depression record leaves with it.
    conditions = {r["id"]: r for r in _download(client, outputs["Condition"]["url"], HGCJ)}
    codes = {c["code"] for c in conditions[DEPRESSION]["meta"].get("security", [])}
    assert "PSY" in codes


def test_a_system_exports_only_its_own_records(client: TestClient, records: None) -> None:
    _share(client)  # a Consent opens records to clinicians, never to another system
    found = _export(client, "$export", UMCEP)
    assert _ids(found, "Patient") == [EL_PASO_PATIENT]
    assert _ids(found, "Condition") == [EL_PASO_CONDITION]
    assert "hgcj" not in json.dumps({k: v for k, v in found.items() if k != "Organization"})
    assert found.get("Consent") is None


def test_a_clinician_exports_what_the_gate_lets_through(client: TestClient, records: None) -> None:
    # Without a Consent the Juárez records are not in the files.
    found = _export(client, "Patient/$export", DOCTOR)
    assert _ids(found, "Patient") == [EL_PASO_PATIENT]
    assert _ids(found, "Condition") == [EL_PASO_CONDITION]
    assert "Organization" not in found  # not in the Patient compartment

    # With one they are, except the PSY-labelled record the Consent does not name.
    _share(client)
    found = _export(client, "Patient/$export", DOCTOR)
    assert _ids(found, "Patient") == [JUAREZ_PATIENT, EL_PASO_PATIENT]
    assert _ids(found, "Condition") == [ASTHMA, EL_PASO_CONDITION]
    asthma = next(r for r in found["Condition"] if r["id"] == ASTHMA)
    assert "hgcj" in asthma["meta"]["source"]

    # The disclosure is audited as an export's, naming the records and the patient.
    with session_factory()() as session:
        rows = session.scalars(
            select(AuditEntry).where(
                AuditEntry.event_type == "disclosure", AuditEntry.subtype == "export"
            )
        ).all()
    disclosed = {e for row in rows for e in row.entities}
    # (Juana's Consent too: the gate shows it to those it permits, as a read would.)
    exported = {f"{t}/{i}" for t in found for i in _ids(found, t) if i.startswith("hgcj")}
    assert disclosed == exported
    assert exported == {
        f"Patient/{JUAREZ_PATIENT}",
        f"Condition/{ASTHMA}",
        "Consent/hgcj-consent-1",
    }
    assert {p for row in rows for p in row.patients} == {f"Patient/{JUAREZ_PATIENT}"}
    assert {row.fhir_user for row in rows} == {"Practitioner/umcep-dr-ruiz"}

    # A revoked Consent drops them from the next export.
    _share(client, status="inactive")
    found = _export(client, "Patient/$export", DOCTOR)
    assert _ids(found, "Patient") == [EL_PASO_PATIENT]
    assert _ids(found, "Condition") == [EL_PASO_CONDITION]


def test_a_patient_exports_their_own_records(client: TestClient, records: None) -> None:
    juana = bearer("patient", "hgcj", fhir_user=f"Patient/{JUAREZ_PATIENT}")
    found = _export(client, "Patient/$export", juana)
    assert _ids(found, "Patient") == [JUAREZ_PATIENT]
    assert _ids(found, "Condition") == [ASTHMA, DEPRESSION]  # right of access: all of hers


def test_type_and_since_narrow_the_export(client: TestClient, records: None) -> None:
    found = _export(client, "$export?_type=Condition", HGCJ)
    assert set(found) == {"Condition"}
    found = _export(client, "$export?_type=Patient,Organization", HGCJ)
    assert set(found) == {"Patient", "Organization"}

    with session_factory()() as session:
        later = session.scalar(select(func.max(ExportJob.transaction_time))) or dt.datetime.now(
            dt.UTC
        )
    since = later.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    put_resource(client, condition("hgcj-c-later", JUAREZ_PATIENT, "J20.9"), HGCJ)
    found = _export(client, f"$export?_since={since}", HGCJ)
    assert {t: _ids(found, t) for t in found} == {"Condition": ["hgcj-c-later"]}
    manifest_request = _manifest(
        client, _status_path(_kick_off(client, f"$export?_since={since}", HGCJ)), HGCJ
    )["request"]
    assert "_since=" in manifest_request


def test_files_split_at_the_configured_size(
    client: TestClient, records: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(2, 6):
        put_resource(client, condition(f"hgcj-c-{n}", JUAREZ_PATIENT, "J20.9"), HGCJ)
    monkeypatch.setenv("PUENTE_EXPORT_FILE_MAX_RESOURCES", "2")
    get_settings.cache_clear()
    started = _kick_off(client, "$export?_type=Condition", HGCJ)
    manifest = _manifest(client, _status_path(started), HGCJ)
    counts = [o["count"] for o in manifest["output"]]
    assert counts == [2, 2, 2]
    names = [o["url"].rsplit("/", 1)[1] for o in manifest["output"]]
    assert names == ["Condition-1.ndjson", "Condition-2.ndjson", "Condition-3.ndjson"]
    ids = [r["id"] for o in manifest["output"] for r in _download(client, o["url"], HGCJ)]
    assert len(ids) == len(set(ids)) == 6


def test_a_group_export_holds_its_members_compartments(client: TestClient, records: None) -> None:
    put_resource(client, patient(id="umcep-p10", name=[{"family": "Jones"}]), UMCEP)
    put_resource(client, condition("umcep-c-10", "umcep-p10", "J45.9"), UMCEP)
    group = {
        "resourceType": "Group",
        "id": "umcep-flu-clinic",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{EL_PASO_PATIENT}"}}],
    }
    put_resource(client, group, UMCEP)
    found = _export(client, "Group/umcep-flu-clinic/$export", DOCTOR)
    assert _ids(found, "Patient") == [EL_PASO_PATIENT]
    assert _ids(found, "Condition") == [EL_PASO_CONDITION]
    # Another hospital's Group is answered as if it did not exist.
    hidden = _kick_off(client, "Group/umcep-flu-clinic/$export", HGCJ)
    assert hidden.status_code == 404
    assert _kick_off(client, "Group/nope/$export", DOCTOR).status_code == 404


def test_only_the_caller_who_kicked_off_sees_status_and_files(
    client: TestClient, records: None
) -> None:
    status_path = _status_path(_kick_off(client, "Patient/$export", DOCTOR))
    manifest = _manifest(client, status_path, DOCTOR)
    file_path = manifest["output"][0]["url"].removeprefix(BASE)
    for other in (OTHER_DOCTOR, UMCEP, HGCJ, bearer("admin", None)):
        for path in (status_path, file_path):
            response = client.get(path, headers=other)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["resourceType"] == "OperationOutcome"
        assert client.delete(status_path, headers=other).status_code == 404
    assert client.get(file_path).status_code == 401  # a token is required
    assert client.get(status_path, headers=DOCTOR).status_code == 200


def test_cancel_deletes_the_files_and_forgets_the_job(client: TestClient, records: None) -> None:
    status_path = _status_path(_kick_off(client, "$export", HGCJ))
    file_path = _manifest(client, status_path, HGCJ)["output"][0]["url"].removeprefix(BASE)
    assert client.delete(status_path, headers=HGCJ).status_code == 202
    assert client.get(status_path, headers=HGCJ).status_code == 404
    assert client.get(file_path, headers=HGCJ).status_code == 404
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(ExportChunk)) == 0


def test_expired_files_are_purged_and_the_status_is_gone(client: TestClient, records: None) -> None:
    from exchange.tasks import purge_exports

    first = _status_path(_kick_off(client, "$export", HGCJ))
    second = _status_path(_kick_off(client, "$export?_type=Patient", HGCJ))
    file_path = _manifest(client, first, HGCJ)["output"][0]["url"].removeprefix(BASE)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with session_factory()() as session:
        session.execute(update(ExportJob).values(expires_at=past))
        session.commit()
    assert client.get(first, headers=HGCJ).status_code == 410  # at once, purged or not
    assert client.get(file_path, headers=HGCJ).status_code == 410
    with session_factory()() as session:
        assert (session.scalar(select(func.count()).select_from(ExportChunk)) or 0) > 0
    purge_exports.apply()  # what beat runs every ten minutes
    for path in (first, second, file_path):
        gone = client.get(path, headers=HGCJ)
        assert gone.status_code == 410
        assert gone.json()["issue"][0]["code"] == "deleted"
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(ExportChunk)) == 0
    assert client.get(first, headers=UMCEP).status_code == 404  # never 410 to others


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("$export", {"Prefer": ""}, 400),
        ("$export?_outputFormat=application/fhir%2Bxml", ASYNC, 400),
        ("$export?_type=Condition,Spaceship", ASYNC, 400),
        ("$export?_since=yesterday", ASYNC, 400),
        ("$export?_since=2026-01-01", ASYNC, 400),
        ("$export?_elements=id", ASYNC, 400),
        ("$export?_typeFilter=Condition%3Fcode%3DJ45.9", ASYNC, 400),
        ("Patient/$export?_type=Organization", ASYNC, 400),
        ("$export?_elements=id", {**ASYNC, "Prefer": "respond-async, handling=lenient"}, 202),
        ("$export?_outputFormat=ndjson&_type=Patient", ASYNC, 202),
        ("$export", {**ASYNC, "Accept": "application/fhir+xml"}, 406),
    ],
)
def test_bad_parameters_are_a_4xx_operation_outcome(
    client: TestClient, records: None, path: str, headers: dict[str, str], status: int
) -> None:
    response = client.get(f"/fhir/{path}", headers={**HGCJ, **headers})
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("$export", bearer("analyst", None)),
        ("Patient/$export", bearer("analyst", None)),
        ("Patient/$export", bearer("admin", None)),
        ("Patient/$export", OFFICER),
        ("$export", DOCTOR),
        ("$export", bearer("patient", "hgcj", fhir_user=f"Patient/{JUAREZ_PATIENT}")),
        ("Group/g1/$export", bearer("patient", "hgcj", fhir_user=f"Patient/{JUAREZ_PATIENT}")),
    ],
)
def test_roles_that_may_not_export_get_403(
    client: TestClient, records: None, path: str, headers: dict[str, str]
) -> None:
    response = client.get(f"/fhir/{path}", headers={**headers, **ASYNC})
    assert response.status_code == 403, response.text
    assert response.json()["issue"][0]["code"] == "forbidden"


def test_post_kick_off_reads_a_parameters_body(client: TestClient, records: None) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
            {"name": "_type", "valueString": "Patient"},
        ],
    }
    started = client.post(
        "/fhir/Patient/$export", json=body, headers={**DOCTOR, **ASYNC, **fhir_json()}
    )
    manifest = _manifest(client, _status_path(started), DOCTOR)
    assert [o["type"] for o in manifest["output"]] == ["Patient"]
    bad = client.post(
        "/fhir/$export",
        json={"resourceType": "Patient"},
        headers={**HGCJ, **ASYNC, **fhir_json()},
    )
    assert bad.status_code == 400


def test_every_download_is_audited(client: TestClient, records: None) -> None:
    status_path = _status_path(_kick_off(client, "$export?_type=Condition", HGCJ))
    manifest = _manifest(client, status_path, HGCJ)
    url = manifest["output"][0]["url"]
    _download(client, url, HGCJ)
    _download(client, url, HGCJ)
    with session_factory()() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == "export").order_by(AuditEntry.id)
        ).all()
    assert len(rows) == 2
    job_file = url.removeprefix(f"{BASE}/fhir/$export-file/")
    for row in rows:
        assert row.subtype == "download"
        assert row.org_code == "hgcj"
        assert row.entities[0] == f"$export/{job_file}"
        assert sorted(row.entities[1:]) == [f"Condition/{ASTHMA}", f"Condition/{DEPRESSION}"]
        assert row.patients == [f"Patient/{JUAREZ_PATIENT}"]


def test_capability_statement_declares_export(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    (rest,) = statement["rest"]
    assert any(op["name"] == "export" for op in rest["operation"])
    by_type = {r["type"]: r for r in rest["resource"]}
    for resource_type in ("Patient", "Group"):
        names = [op["name"] for op in by_type[resource_type].get("operation", [])]
        assert "export" in names
    definition = client.get("/fhir/OperationDefinition/export", headers=HGCJ)
    assert definition.status_code == 200
    OperationDefinition.model_validate(definition.json())


def test_status_is_202_with_progress_until_the_task_has_run(
    client: TestClient, records: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exchange.tasks import export_task
    from puente import tasks

    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(tasks, "_send", lambda name, args: sent.append((name, args)))
    status_path = _status_path(_kick_off(client, "$export", HGCJ))
    waiting = client.get(status_path, headers=HGCJ)
    assert waiting.status_code == 202
    assert waiting.headers["Retry-After"] == "2"
    types = len(STORE_TYPES)  # system level: every stored type the scopes allow
    assert waiting.headers["X-Progress"] == f"0 resources written; 0 of {types} types done"
    ((_task, args),) = [s for s in sent if s[0] == "puente.exchange.export"]
    export_task.apply(args=args)
    export_task.apply(args=args)  # a redelivery finds the job finished: nothing twice
    manifest = _manifest(client, status_path, HGCJ)
    assert {o["type"]: o["count"] for o in manifest["output"]} == {
        "Condition": 2,
        "Organization": 4,
        "Patient": 1,
    }


def test_a_failed_export_answers_500_with_an_operation_outcome(
    client: TestClient, records: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exchange import export_run

    def broken(*_: Any, **__: Any) -> bool:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(export_run, "run_page", broken)
    status_path = _status_path(_kick_off(client, "$export", HGCJ))
    failed = client.get(status_path, headers=HGCJ)
    assert failed.status_code == 500
    outcome = failed.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "exception"
    assert "fire" not in failed.text
    es = client.get(status_path, headers={**HGCJ, "Accept-Language": "es-MX"})
    assert es.json()["issue"][0]["details"]["text"].startswith("La exportación falló")
