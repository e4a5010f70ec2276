"""The accounting of disclosures over HTTP (issue 6, point 9): a Juárez patient sees, in
their language, who at El Paso saw which of their records and when, and can download it.

Each test builds: the two hospitals' Organizations; Juárez patient `hgcj-p1` with a plain
Condition; El Paso's Dr. Ana Ruiz (`Practitioner/umcep-dr-ruiz`); and the Consent by
which the patient lets the United States' hospitals see their records for treatment.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationdefinition import OperationDefinition
from sqlalchemy import select

from puente.audit.models import AuditEntry
from puente.db import session_factory
from tests.consent.builders import break_glass, consent_json, provision
from tests.factories import (
    audit_entry,
    bearer,
    condition,
    fhir_json,
    organizations,
    patient,
    put_resource,
)

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
OFFICER = bearer("consent-officer", "hgcj")
DOCTOR_REF = "Practitioner/umcep-dr-ruiz"
DOCTOR = bearer("clinician", "umcep", fhir_user=DOCTOR_REF)
MX_DOCTOR = bearer("clinician", "hgcj", fhir_user="Practitioner/hgcj-dr-garza")
PATIENT = "hgcj-p1"
ME = bearer("patient", "hgcj", fhir_user=f"Patient/{PATIENT}")
ASTHMA = "hgcj-c-asthma"
ZONE = ZoneInfo("America/Ciudad_Juarez")
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
URL = f"/fhir/Patient/{PATIENT}/$disclosures"


def _share(client: TestClient, subject: str = PATIENT, cid: str = "hgcj-consent-1") -> None:
    root = provision("permit", to=["us"], purposes=["TREAT"])
    put_resource(client, consent_json(root, cid=cid, patient=subject), OFFICER)


@pytest.fixture
def juarez(client: TestClient) -> None:
    with session_factory()() as session:
        organizations(session)
        session.commit()
    put_resource(client, patient(id=PATIENT), HGCJ)
    put_resource(client, condition(ASTHMA, PATIENT), HGCJ)
    doctor = {
        "resourceType": "Practitioner",
        "id": "umcep-dr-ruiz",
        "name": [{"family": "Ruiz", "given": ["Ana"], "prefix": ["Dr."]}],
    }
    put_resource(client, doctor, UMCEP)
    _share(client)


def _accounting(
    client: TestClient,
    headers: dict[str, str] = ME,
    query: str = "",
    *,
    language: str = "en-US",
) -> dict[str, Any]:
    response = client.get(f"{URL}{query}", headers={**headers, "Accept-Language": language})
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    Bundle.model_validate(bundle)  # valid R4 (R4B models read R4)
    return bundle


def _events(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def _narrative(event: dict[str, Any]) -> str:
    div: str = event["text"]["div"]
    assert event["text"]["status"] == "generated"
    assert div.startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    return div


def _read(client: TestClient, path: str, headers: dict[str, str] = DOCTOR) -> None:
    response = client.get(f"/fhir/{path}", headers=headers)
    assert response.status_code == 200, response.text


def test_the_patient_sees_who_at_el_paso_read_which_record_and_when(
    client: TestClient, juarez: None
) -> None:
    _read(client, f"Condition/{ASTHMA}")
    _read(client, f"Condition/{ASTHMA}", MX_DOCTOR)  # Juárez's own read: no disclosure
    _read(client, f"Condition/{ASTHMA}", ME)  # the patient's own read: no disclosure
    today = dt.datetime.now(dt.UTC).astimezone(ZONE)

    spanish = _accounting(client, language="es-MX")
    assert spanish["type"] == "searchset"
    assert spanish["total"] == 1
    (event,) = _events(spanish)
    text = _narrative(event)
    assert "University Medical Center of El Paso (Estados Unidos)" in text
    assert "Dr. Ana Ruiz" in text
    assert f"consultó Diagnóstico {ASTHMA}" in text
    assert format_date(today, format="long", locale="es_MX") in text
    assert "Motivo: tratamiento" in text
    assert "emergencia" not in text

    english = _accounting(client, language="en")
    (event,) = _events(english)
    text = _narrative(event)
    assert f"viewed Diagnosis {ASTHMA}" in text
    assert "(United States)" in text
    assert format_date(today, format="long", locale="en_US") in text
    # The FHIR side: the record, who and the hospital, the purpose, the instant.
    assert [e["what"]["reference"] for e in event["entity"] if "what" in e] == [
        f"Condition/{ASTHMA}",
        f"Patient/{PATIENT}",
    ]
    requestor, hospital = event["agent"][0], event["agent"][1]
    assert requestor["who"] == {"reference": DOCTOR_REF, "display": "Dr. Ana Ruiz"}
    assert hospital["who"] == {
        "reference": "Organization/umcep",
        "display": "University Medical Center of El Paso",
    }
    assert event["purposeOfEvent"][0]["coding"] == [{"system": ACT_REASON, "code": "TREAT"}]
    recorded = dt.datetime.fromisoformat(event["recorded"].replace("Z", "+00:00"))
    assert abs((recorded - dt.datetime.now(dt.UTC)).total_seconds()) < 120
    # What serves the hospitals' investigations is not shown: address, account, request id.
    assert "network" not in requestor
    assert "altId" not in requestor
    assert "umcep-dr-ruiz" not in str(requestor.get("who", {}).get("identifier", ""))
    assert not any("identifier" in e.get("what", {}) for e in event["entity"])


def test_a_search_and_a_break_the_glass_are_listed_newest_first(
    client: TestClient, juarez: None
) -> None:
    from tests.matching.test_mpi_match import MRN_HGCJ, MRN_UMCEP, person

    _read(client, f"Condition?subject=Patient/{PATIENT}")
    # José at both hospitals (the MPI links them); a break-the-glass on El Paso's record
    # opens Juárez's, and what it opens is marked in the accounting.
    put_resource(client, person(PATIENT, MRN_HGCJ), HGCJ)
    put_resource(client, person("umcep-p1", MRN_UMCEP), UMCEP)
    break_glass(client, "umcep-p1", DOCTOR)
    emergency = bearer("clinician", "umcep", fhir_user=DOCTOR_REF, purpose="ETREAT")
    _read(client, f"Condition/{ASTHMA}", emergency)

    bundle = _accounting(client, language="es")
    newest, oldest = _events(bundle)
    assert "buscó y recibió" in _narrative(oldest)
    assert "romper el cristal" not in _narrative(oldest)
    assert "romper el cristal" in _narrative(newest)
    assert "tratamiento de urgencia" in _narrative(newest)
    codes = [c["code"] for c in newest["purposeOfEvent"][0]["coding"]]
    assert codes == ["ETREAT", "BTG"]
    assert newest["outcomeDesc"] == "break-the-glass"
    # The same person's El Paso record answers with the same accounting.
    linked = client.get("/fhir/Patient/umcep-p1/$disclosures", headers=ME)
    assert linked.status_code == 200
    assert [e["resource"]["id"] for e in linked.json()["entry"]] == [
        newest["id"],
        oldest["id"],
    ]


def test_who_may_read_an_accounting(client: TestClient, juarez: None) -> None:
    _read(client, f"Condition/{ASTHMA}")
    put_resource(client, patient(id="hgcj-p2", name=[{"family": "Otro", "given": ["Ana"]}]), HGCJ)
    assert _accounting(client, OFFICER)["total"] == 1  # the patient's hospital's officer
    not_found = []
    for headers in (
        bearer("patient", "hgcj", fhir_user="Patient/hgcj-p2"),  # another patient
        bearer("consent-officer", "umcep"),  # another hospital's officer
    ):
        response = client.get(URL, headers=headers)
        assert response.status_code == 404
        not_found.append(response.json()["issue"])
    absent = client.get("/fhir/Patient/hgcj-nobody/$disclosures", headers=OFFICER)
    assert absent.status_code == 404
    # Answered exactly as a Patient that does not exist.
    assert not_found[0] == not_found[1]
    assert [i["code"] for i in absent.json()["issue"]] == [i["code"] for i in not_found[0]]
    for role, org in (
        ("clinician", "umcep"),
        ("clinician", "hgcj"),
        ("system", "hgcj"),
        ("analyst", None),
        ("admin", None),
    ):
        response = client.get(URL, headers=bearer(role, org, fhir_user=None))
        assert response.status_code == 403, role
        assert response.json()["resourceType"] == "OperationOutcome"
    # The other patient's own accounting is empty: nothing of theirs crossed.
    other = bearer("patient", "hgcj", fhir_user="Patient/hgcj-p2")
    response = client.get("/fhir/Patient/hgcj-p2/$disclosures", headers=other)
    assert response.status_code == 200
    assert response.json()["total"] == 0


def test_a_search_across_patients_shows_each_only_their_own_records(
    client: TestClient, juarez: None
) -> None:
    put_resource(client, patient(id="hgcj-p2", name=[{"family": "Otro", "given": ["Ana"]}]), HGCJ)
    put_resource(client, condition("hgcj-c-other", "hgcj-p2"), HGCJ)
    _share(client, subject="hgcj-p2", cid="hgcj-consent-2")
    _read(client, "Condition?code=J45.9")  # both patients' Conditions in one response
    with session_factory()() as session:
        (row,) = session.scalars(select(AuditEntry).where(AuditEntry.event_type == "disclosure"))
        assert set(row.entities) == {f"Condition/{ASTHMA}", "Condition/hgcj-c-other"}
    (event,) = _events(_accounting(client))
    assert "hgcj-c-other" not in str(event)
    assert "hgcj-p2" not in str(event)
    assert ASTHMA in _narrative(event)


def _rows(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_the_accounting_downloads_as_csv_safe_for_spreadsheets(
    client: TestClient, juarez: None
) -> None:
    formula = '=HYPERLINK("http://evil.example","Dr. Ruiz")'
    doctor = {"resourceType": "Practitioner", "id": "umcep-dr-ruiz", "name": [{"text": formula}]}
    put_resource(client, doctor, UMCEP)
    _read(client, f"Condition/{ASTHMA}")
    response = client.get(URL, headers={**ME, "Accept": "text/csv", "Accept-Language": "es"})
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="disclosures-{PATIENT}.csv"'
    header, row = _rows(response)
    assert header[:3] == ["Fecha y hora", "Fecha y hora (UTC)", "Quién"]
    found = dict(zip(header, row, strict=True))
    assert found["Quién"] == "'" + formula  # not run as a formula
    assert found["Hospital"] == "University Medical Center of El Paso"
    assert found["País"] == "Estados Unidos"
    assert found["Qué hizo"] == "consultó"
    assert found["Expedientes"] == f"Condition/{ASTHMA}"
    assert found["Tipos de registro"] == "Diagnóstico"
    assert found["Motivo"] == "tratamiento"
    assert found["Acceso de emergencia (romper el cristal)"] == "no"
    english = client.get(f"{URL}?_format=text/csv", headers={**OFFICER, "Accept-Language": "en"})
    header, row = _rows(english)
    assert "Date and time" in header
    assert "viewed" in row
    # JSON stays the default; other formats are still refused.
    assert client.get(URL, headers={**ME, "Accept": "*/*"}).json()["resourceType"] == "Bundle"
    assert client.get(f"{URL}?_format=xml", headers=ME).status_code == 406
    assert (
        client.get(f"/fhir/Patient/{PATIENT}", headers={**ME, "Accept": "text/csv"}).status_code
        == 406
    )


def _disclosure_at(session: Any, when: dt.datetime, record: str = ASTHMA) -> None:
    audit_entry(
        session,
        org="umcep",
        role="clinician",
        event_type="disclosure",
        entities=(f"Condition/{record}",),
        patients=(f"Patient/{PATIENT}",),
        recorded_at=when,
        fhir_user=DOCTOR_REF,
    )


def test_start_and_end_are_days_on_the_border_clock(client: TestClient, juarez: None) -> None:
    with session_factory()() as session:
        # 05:00 UTC on 1 March is 22:00 on 28 February in Juárez and El Paso (MST).
        for instant in ("2026-03-01T05:00:00", "2026-03-10T18:00:00", "2026-04-02T18:00:00"):
            _disclosure_at(session, dt.datetime.fromisoformat(instant).replace(tzinfo=dt.UTC))
        session.commit()
    march = _accounting(client, query="?start=2026-03-01&end=2026-03-31")
    assert [e["recorded"][:19] for e in _events(march)] == ["2026-03-10T18:00:00"]
    assert march["total"] == 1
    assert _accounting(client, query="?start=2026-03")["total"] == 2
    assert _accounting(client, query="?end=2026-02")["total"] == 1
    assert _accounting(client, query="?start=2026&end=2026")["total"] == 3
    for bad in ("?start=2026-13-01", "?start=yesterday", "?start=2026-04-01&end=2026-03-01",
                "?since=2026", "?start=2026&start=2027", "?_count=-1"):  # fmt: skip
        response = client.get(f"{URL}{bad}", headers=ME)
        assert response.status_code == 400, bad
        assert response.json()["resourceType"] == "OperationOutcome"


def test_pages_follow_each_other_newest_first(client: TestClient, juarez: None) -> None:
    with session_factory()() as session:
        for day in (1, 2, 3):
            _disclosure_at(session, dt.datetime(2026, 5, day, 18, tzinfo=dt.UTC))
        session.commit()
    first = _accounting(client, query="?_count=2")
    assert first["total"] == 3
    assert [e["recorded"][:10] for e in _events(first)] == ["2026-05-03", "2026-05-02"]
    (next_url,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = client.get(next_url.removeprefix("http://testserver"), headers=ME).json()
    assert [e["resource"]["recorded"][:10] for e in second["entry"]] == ["2026-05-01"]
    assert not [link for link in second["link"] if link["relation"] == "next"]


def test_reading_the_accounting_is_audited_and_is_no_disclosure(
    client: TestClient, juarez: None
) -> None:
    _read(client, f"Condition/{ASTHMA}")
    (event,) = _events(_accounting(client))
    with session_factory()() as session:
        reads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.event_type == "rest", AuditEntry.fhir_user == f"Patient/{PATIENT}"
            )
        ).all()
        disclosures = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == "disclosure")
        ).all()
    (read,) = [r for r in reads if r.subtype == "operation"]
    assert read.patients == [f"Patient/{PATIENT}"]
    assert read.entities == [f"AuditEvent/{event['id']}"]
    assert read.outcome == 0
    assert len(disclosures) == 1


def test_the_operation_is_in_the_capability_statement(client: TestClient) -> None:
    metadata = client.get("/fhir/metadata").json()
    (patient_type,) = [r for r in metadata["rest"][0]["resource"] if r["type"] == "Patient"]
    (operation,) = [o for o in patient_type["operation"] if o["name"] == "disclosures"]
    definition = client.get(operation["definition"].removeprefix("http://testserver"), headers=ME)
    assert definition.status_code == 200
    OperationDefinition.model_validate(definition.json())
    assert definition.json()["code"] == "disclosures"


def test_match_and_pix_answers_are_disclosures_in_the_accounting(
    client: TestClient, juarez: None
) -> None:
    """`$match` and `$ihe-pix` hand another hospital's Patients (and their identifiers)
    to the caller: each is a disclosure like a read, and the patient sees it."""
    from puente.auth import service as auth
    from tests.matching.test_mpi_match import CURP, MRN_HGCJ, MRN_UMCEP, person

    with session_factory()() as session:
        auth.add_system(
            session, code="hgcj", name="HGCJ", country="MX", identifier_systems=(CURP, MRN_HGCJ)
        )
        auth.add_system(
            session, code="umcep", name="UMC", country="US", identifier_systems=(MRN_UMCEP,)
        )
        session.commit()
    put_resource(client, person(PATIENT, MRN_HGCJ), HGCJ)
    put_resource(client, person("umcep-p1", MRN_UMCEP), UMCEP)  # linked automatically
    described = person("query", MRN_UMCEP)
    matched = client.post(
        "/fhir/Patient/$match",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": described}],
        },
        headers={**DOCTOR, **fhir_json()},
    )
    assert matched.status_code == 200, matched.text
    assert f"Patient/{PATIENT}" in {
        e["fullUrl"].split("/fhir/")[1] for e in matched.json()["entry"]
    }
    pix = client.get(
        "/fhir/Patient/$ihe-pix",
        params={"sourceIdentifier": f"{MRN_UMCEP}|UMCEP-P1", "targetSystem": CURP},
        headers=DOCTOR,
    )
    assert pix.status_code == 200, pix.text
    assert pix.json()["parameter"], pix.text

    newest, oldest = _events(_accounting(client, language="es"))
    assert "cotejó con sus pacientes" in _narrative(oldest)
    assert "cotejó con sus pacientes" in _narrative(newest)
    with session_factory()() as session:
        subtypes = list(
            session.scalars(
                select(AuditEntry.subtype)
                .where(AuditEntry.event_type == "disclosure")
                .order_by(AuditEntry.id)
            )
        )
    assert subtypes == ["match", "ihe-pix"]
