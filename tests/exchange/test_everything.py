"""`Patient/$everything` over HTTP (issue 6, points 4 and 5): José's Juárez record linked to
his El Paso record, as El Paso's clinician, the patient himself and the other roles see it.

Each test builds: the two hospitals; José at both (`person`: the MPI links the two records
automatically); in Juárez an asthma Condition (2026-03), a depression one (PSY at ingest)
and an ER visit (2025-06); in El Paso an ER visit (2026-05) with its practitioner and
location, a lab result in it and the Provenance of that result; and another El Paso
patient with a visit of his own, which must never show.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationdefinition import OperationDefinition
from sqlalchemy import select

from consent import service as labelling
from puente.audit.models import AuditEntry
from puente.db import session_factory
from tests.consent.builders import break_glass, consent_json, provision
from tests.factories import bearer, condition, fhir_json, organizations, patient, put_resource
from tests.matching.test_mpi_match import MRN_HGCJ, MRN_UMCEP, person

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
OFFICER = bearer("consent-officer", "hgcj")
DOCTOR = bearer("clinician", "umcep", fhir_user="Practitioner/umcep-dr-ruiz")
JOSE_MX, JOSE_US = "hgcj-p1", "umcep-p1"
JOSE = bearer("patient", "hgcj", fhir_user=f"Patient/{JOSE_MX}", subject=f"Patient/{JOSE_MX}")
SOURCE_MX = "urn:puente:source:mx:hgcj"
SOURCE_US = "urn:puente:source:us:umcep"
ER = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"}

JUAREZ = {
    "Patient/hgcj-p1",
    "Condition/hgcj-c-asthma",
    "Encounter/hgcj-e-2025",
}
EL_PASO = {
    "Patient/umcep-p1",
    "Encounter/umcep-e-2026",
    "Observation/umcep-o-glucose",
    "Practitioner/umcep-dr-ruiz",
    "Location/umcep-er",
    "Provenance/umcep-prov-glucose",
}
DEPRESSION = "Condition/hgcj-c-psy"


def _visit(res_id: str, patient: str, start: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": res_id,
        "status": "finished",
        "class": ER,
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": start, "end": start},
        **fields,
    }


def _el_paso(client: TestClient) -> None:
    put_resource(client, person(JOSE_US, MRN_UMCEP), UMCEP)
    put_resource(
        client,
        {"resourceType": "Practitioner", "id": "umcep-dr-ruiz", "name": [{"family": "Ruiz"}]},
        UMCEP,
    )
    put_resource(client, {"resourceType": "Location", "id": "umcep-er", "name": "UMC ER"}, UMCEP)
    put_resource(
        client,
        _visit(
            "umcep-e-2026",
            JOSE_US,
            "2026-05-10",
            participant=[{"individual": {"reference": "Practitioner/umcep-dr-ruiz"}}],
            location=[{"location": {"reference": "Location/umcep-er"}}],
        ),
        UMCEP,
    )
    put_resource(
        client,
        {
            "resourceType": "Observation",
            "id": "umcep-o-glucose",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
            "subject": {"reference": f"Patient/{JOSE_US}"},
            "encounter": {"reference": "Encounter/umcep-e-2026"},
            "effectiveDateTime": "2026-05-10T08:00:00Z",
        },
        UMCEP,
    )
    put_resource(
        client,
        {
            "resourceType": "Provenance",
            "id": "umcep-prov-glucose",
            "target": [{"reference": "Observation/umcep-o-glucose"}],
            "recorded": "2026-05-10T08:05:00Z",
            "agent": [{"who": {"reference": "Practitioner/umcep-dr-ruiz"}}],
        },
        UMCEP,
    )
    # Someone else at El Paso: never part of José's record.
    other = patient(id="umcep-p2", name=[{"family": "Otro", "given": ["Ana"]}], gender="female")
    put_resource(client, other, UMCEP)
    put_resource(client, _visit("umcep-e-other", "umcep-p2", "2026-05-11"), UMCEP)


@pytest.fixture
def border(client: TestClient) -> None:
    with session_factory()() as session:
        organizations(session)
        session.commit()
    put_resource(client, person(JOSE_MX, MRN_HGCJ), HGCJ)
    put_resource(client, condition("hgcj-c-asthma", JOSE_MX, "J45.9"), HGCJ)
    put_resource(client, condition("hgcj-c-psy", JOSE_MX, "F32.9"), HGCJ)
    provider = {"reference": "Organization/hgcj"}
    put_resource(
        client, _visit("hgcj-e-2025", JOSE_MX, "2025-06-01", serviceProvider=provider), HGCJ
    )
    _el_paso(client)


def _share(client: TestClient, **kwargs: Any) -> None:
    """José lets the United States' hospitals see his records for treatment."""
    root = provision("permit", to=["us"], purposes=["TREAT"], **kwargs)
    put_resource(client, consent_json(root, cid="hgcj-consent-1", patient=JOSE_MX), OFFICER)


def _everything(
    client: TestClient, patient: str = JOSE_US, headers: dict[str, str] = DOCTOR, query: str = ""
) -> Any:
    response = client.get(f"/fhir/Patient/{patient}/$everything{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _refs(bundle: dict[str, Any]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] != "outcome"
    }


def _withheld(bundle: dict[str, Any]) -> bool:
    outcomes = [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome"]
    return any(
        issue["code"] == "suppressed"
        and any(c["code"] == "BTG" for c in issue["details"].get("coding", []))
        for outcome in outcomes
        for issue in outcome["issue"]
    )


def _clinical(refs: set[str]) -> set[str]:
    """Without the directory (Organization) and the Consent."""
    return {r for r in refs if not r.startswith(("Organization/", "Consent/"))}


def _next(bundle: dict[str, Any]) -> str | None:
    for link in bundle["link"]:
        if link["relation"] == "next":
            return str(link["url"]).removeprefix("http://testserver")
    return None


def test_with_consent_the_el_paso_clinician_gets_both_sides(
    client: TestClient, border: None
) -> None:
    _share(client)
    bundle = _everything(client)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    refs = _refs(bundle)
    assert _clinical(refs) == JUAREZ | EL_PASO
    assert "Organization/hgcj" in refs  # the Juárez visit's service provider, one level
    assert bundle["total"] == len(refs)
    # The depression record is withheld (PSY needs explicit permission): said, not which.
    assert DEPRESSION not in refs
    assert _withheld(bundle)
    assert "hgcj-c-psy" not in str(bundle)
    sources = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]["meta"]["source"]
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    }
    assert {sources[r] for r in JUAREZ} == {SOURCE_MX}
    assert {sources[r] for r in EL_PASO} == {SOURCE_US}
    # The person's Patient records come first, and each shows the other through the gate.
    first = [e["resource"] for e in bundle["entry"][:2]]
    assert {p["id"] for p in first} == {JOSE_MX, JOSE_US}
    assert all(p["resourceType"] == "Patient" and p["link"] for p in first)
    # Asked about the Juárez record, the answer is the same person's.
    assert _refs(_everything(client, JOSE_MX)) == refs


def test_without_consent_only_the_own_side_and_a_break_the_glass_hint(
    client: TestClient, border: None
) -> None:
    bundle = _everything(client)
    assert _clinical(_refs(bundle)) == EL_PASO
    assert bundle["total"] == len(_refs(bundle))
    assert _withheld(bundle)
    assert "hgcj" not in str([e for e in bundle["entry"] if e["search"]["mode"] == "match"])
    # The Juárez record itself: exactly as if it did not exist.
    denied = client.get(f"/fhir/Patient/{JOSE_MX}/$everything", headers=DOCTOR)
    unknown = client.get("/fhir/Patient/hgcj-nobody/$everything", headers=DOCTOR)
    assert denied.status_code == unknown.status_code == 404
    assert denied.json()["issue"][0]["code"] == unknown.json()["issue"][0]["code"]
    assert denied.json()["issue"][0]["details"]["text"].replace(JOSE_MX, "X") == (
        unknown.json()["issue"][0]["details"]["text"].replace("hgcj-nobody", "X")
    )


def test_a_sensitive_record_shows_only_where_the_consent_names_its_label(
    client: TestClient, border: None
) -> None:
    _share(client, nested=[provision("permit", labels=["PSY"])])
    bundle = _everything(client)
    assert DEPRESSION in _refs(bundle)
    assert not _withheld(bundle)


def test_break_the_glass_opens_the_rest(client: TestClient, border: None) -> None:
    break_glass(client, JOSE_US, DOCTOR)
    bundle = _everything(client)
    assert _clinical(_refs(bundle)) == JUAREZ | EL_PASO | {DEPRESSION}
    assert not _withheld(bundle)


def test_the_patient_sees_both_sides_of_his_own_record(client: TestClient, border: None) -> None:
    bundle = _everything(client, JOSE_MX, JOSE)
    refs = _refs(bundle)
    compartment = {r for r in JUAREZ | EL_PASO if not r.startswith(("Practitioner", "Location"))}
    assert compartment - {"Provenance/umcep-prov-glucose"} <= refs
    assert DEPRESSION in refs  # right of access: his own records, sensitive ones too
    assert not {r for r in refs if "umcep-p2" in r or "other" in r}
    assert not _withheld(bundle)
    assert client.get("/fhir/Patient/umcep-p2/$everything", headers=JOSE).status_code == 404


def test_a_hospital_system_gets_its_own_records_only(client: TestClient, border: None) -> None:
    _share(client)
    bundle = _everything(client, JOSE_US, UMCEP)
    assert _clinical(_refs(bundle)) == EL_PASO
    assert not _withheld(bundle)  # no break-the-glass for systems: nothing to hint at


@pytest.mark.parametrize("role", ["analyst", "admin", "consent-officer"])
def test_roles_without_patient_level_use_get_403(
    client: TestClient, border: None, role: str
) -> None:
    response = client.get(f"/fhir/Patient/{JOSE_US}/$everything", headers=bearer(role, "umcep"))
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_type_since_and_care_period(client: TestClient, border: None) -> None:
    _share(client)
    typed = _everything(client, query="?_type=Condition,Encounter")
    assert _refs(typed) == {
        "Condition/hgcj-c-asthma",
        "Encounter/hgcj-e-2025",
        "Encounter/umcep-e-2026",
    }
    assert typed["total"] == 3
    # Care dates from 2026: the 2025 Juárez visit goes, undated resources stay.
    period = _refs(_everything(client, query="?start=2026-01-01"))
    assert "Encounter/hgcj-e-2025" not in period
    assert {"Patient/hgcj-p1", "Condition/hgcj-c-asthma", "Observation/umcep-o-glucose"} <= period
    assert "Practitioner/umcep-dr-ruiz" in period  # referenced by the 2026 visit
    # Up to April 2026: El Paso's May visit and its lab go, with what only they referenced.
    early = _refs(_everything(client, query="?start=2025-01-01&end=2026-04-30"))
    assert _clinical(early) == JUAREZ | {"Patient/umcep-p1"}
    # _since: only what changed at or after the instant.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert _refs(_everything(client, query=f"?_since={later:%Y-%m-%dT%H:%M:%SZ}")) == set()
    assert _everything(client, query="?_since=2020-01-01")["total"] == len(
        _refs(_everything(client))
    )


def test_paging_neither_repeats_nor_loses_while_data_changes(
    client: TestClient, border: None
) -> None:
    _share(client)
    whole = _refs(_everything(client))
    seen: list[str] = []
    page = _everything(client, query="?_count=3")
    assert page["total"] == len(whole)
    assert len([e for e in page["entry"] if e["search"]["mode"] == "match"]) == 3
    added = False
    while True:
        seen += [
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in page["entry"]
            if e["search"]["mode"] == "match"
        ]
        url = _next(page)
        if url is None:
            break
        assert "_count=3" in url
        assert "_page_token=" in url
        if not added:  # a new lab result arrives while the clinician pages
            put_resource(
                client,
                {
                    "resourceType": "Observation",
                    "id": "umcep-o-new",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "subject": {"reference": f"Patient/{JOSE_US}"},
                },
                UMCEP,
            )
            added = True
        response = client.get(url, headers=DOCTOR)
        assert response.status_code == 200, response.text
        page = response.json()
    assert len(seen) == len(set(seen))
    assert set(seen) == whole | {"Observation/umcep-o-new"}


def test_post_parameters_and_bad_parameters(client: TestClient, border: None) -> None:
    _share(client)
    response = client.post(
        f"/fhir/Patient/{JOSE_US}/$everything",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "_type", "valueCode": "Observation"},
                {"name": "start", "valueDate": "2026-01-01"},
                {"name": "_count", "valueInteger": 10},
            ],
        },
        headers={**DOCTOR, **fhir_json()},
    )
    assert response.status_code == 200, response.text
    assert _refs(response.json()) == {"Observation/umcep-o-glucose"}
    for query in ("?_type=Nonsense", "?start=yesterday", "?_count=-1", "?foo=1",
                  "?start=2026-02-01&end=2026-01-01", "?_page_token=%%%"):  # fmt: skip
        bad = client.get(f"/fhir/Patient/{JOSE_US}/$everything{query}", headers=DOCTOR)
        assert bad.status_code == 400, query
        assert bad.json()["resourceType"] == "OperationOutcome"
    wrong = client.post(
        f"/fhir/Patient/{JOSE_US}/$everything",
        json={"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": "1"}]},
        headers={**DOCTOR, **fhir_json()},
    )
    assert wrong.status_code == 400


def test_a_part2_record_carries_its_notice(client: TestClient, border: None) -> None:
    with session_factory()() as session:
        labelling.add_part2_program(
            session,
            owner="hgcj",
            reference="HealthcareService/hgcj-adicciones",
            actor="test",
            now=dt.datetime.now(dt.UTC),
        )
        session.commit()
    detox = condition(
        "hgcj-c-sud", JOSE_MX, "F10.2", recorder={"reference": "HealthcareService/hgcj-adicciones"}
    )
    put_resource(client, detox, HGCJ)
    root = provision(
        "permit", to=["umcep"], custodian=["hgcj"], purposes=["TREAT"],
        labels=["42CFRPart2", "ETH"],
    )  # fmt: skip
    put_resource(client, consent_json(root, cid="hgcj-consent-part2", patient=JOSE_MX), OFFICER)
    response = client.get(
        f"/fhir/Patient/{JOSE_US}/$everything?_type=Condition",
        headers={**DOCTOR, "Accept-Language": "es"},
    )
    assert response.status_code == 200, response.text
    (sud,) = [
        e["resource"] for e in response.json()["entry"] if e["resource"].get("id") == "hgcj-c-sud"
    ]
    codes = {ext["extension"][0]["valueCode"] for ext in sud["meta"]["extension"]}
    assert codes == {"redisclosure-notice", "consent-summary"}


def test_audited_once_with_the_disclosure(client: TestClient, border: None) -> None:
    _share(client)
    _everything(client, query="?_type=Patient,Condition")
    with session_factory()() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.subtype == "everything").order_by(AuditEntry.id)
        ).all()
    assert [r.event_type for r in rows] == ["disclosure", "rest"]
    disclosure, note = rows
    assert disclosure.entities == ["Patient/hgcj-p1", "Condition/hgcj-c-asthma"]
    assert disclosure.patients == ["Patient/hgcj-p1"]
    assert note.patients == ["Patient/hgcj-p1", "Patient/umcep-p1"]
    assert note.org_code == "umcep"


def test_declared_in_the_capability_statement(client: TestClient) -> None:
    metadata = client.get("/fhir/metadata").json()
    (patient,) = [r for r in metadata["rest"][0]["resource"] if r["type"] == "Patient"]
    operations = {op["name"]: op["definition"] for op in patient["operation"]}
    url = "http://testserver/fhir/OperationDefinition/Patient-everything"
    assert operations["everything"] == url
    served = client.get("/fhir/OperationDefinition/Patient-everything", headers=DOCTOR)
    assert served.status_code == 200
    OperationDefinition.model_validate(served.json())
