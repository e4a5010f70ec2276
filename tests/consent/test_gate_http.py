"""The disclosure gate over HTTP (issue 6, points 3 and 4): an El Paso clinician and a
Juárez patient's records, on every path of the store, under the Consents the Juárez
consent officer writes.

Each test builds: the two hospitals' Organizations; Juárez patient `hgcj-p1` with a plain
Condition (`hgcj-c-asthma`) and a depression one (`hgcj-c-psy`, labelled PSY at ingest).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from consent import service as labelling
from consent.codes import ACT_CODE
from puente.audit.models import AuditEntry
from puente.db import session_factory
from tests.consent.builders import break_glass, consent_json, provision
from tests.factories import bearer, condition, organizations, patient, put_resource

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
OFFICER = bearer("consent-officer", "hgcj")
DOCTOR = bearer("clinician", "umcep", fhir_user="Practitioner/umcep-dr-ruiz")
MX_DOCTOR = bearer("clinician", "hgcj")
PATIENT = "hgcj-p1"
ASTHMA = "hgcj-c-asthma"
DEPRESSION = "hgcj-c-psy"
BTG = "BTG"


@pytest.fixture
def juarez(client: TestClient) -> None:
    with session_factory()() as session:
        organizations(session)
        session.commit()
    put_resource(client, patient(id=PATIENT), HGCJ)
    put_resource(client, condition(ASTHMA, PATIENT, "J45.9"), HGCJ)
    put_resource(client, condition(DEPRESSION, PATIENT, "F32.9"), HGCJ)


def _consent(client: TestClient, root: dict[str, Any], cid: str = "hgcj-consent-1") -> None:
    resource = consent_json(root, cid=cid, patient=PATIENT)
    put_resource(client, resource, OFFICER)


def _share(client: TestClient, **kwargs: Any) -> None:
    """Permit the United States' hospitals for treatment."""
    _consent(client, provision("permit", to=["us"], purposes=["TREAT"], **kwargs))


def _found(client: TestClient, query: str, headers: dict[str, str] = DOCTOR) -> Any:
    response = client.get(f"/fhir/{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(bundle: dict[str, Any]) -> list[str]:
    return sorted(
        e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] != "outcome"
    )


def _withheld(bundle: dict[str, Any]) -> bool:
    outcomes = [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome"]
    return any(
        issue["code"] == "suppressed"
        and any(c["code"] == BTG for c in issue["details"].get("coding", []))
        for outcome in outcomes
        for issue in outcome["issue"]
    )


def _status(client: TestClient, path: str, headers: dict[str, str] = DOCTOR) -> int:
    status: int = client.get(f"/fhir/{path}", headers=headers).status_code
    return status


def test_without_consent_nothing_crosses_and_nothing_counts(
    client: TestClient, juarez: None
) -> None:
    for path in (
        f"Patient/{PATIENT}",
        f"Condition/{ASTHMA}",
        f"Condition/{ASTHMA}/_history/1",
        f"Condition/{ASTHMA}/_history",
        "Condition/hgcj-no-such-thing",
    ):
        assert _status(client, path) == 404, path
    bundle = _found(client, f"Condition?subject=Patient/{PATIENT}&_total=accurate")
    assert _ids(bundle) == []
    assert bundle["total"] == 0
    # A clinician who could break the glass is told that records are withheld, not which.
    assert _withheld(bundle)
    assert "hgcj" not in str(list(bundle.get("entry", [])))
    assert _found(client, "Condition?_summary=count")["total"] == 0
    everything = _found(client, "_history")  # directory data only
    assert {e["resource"]["resourceType"] for e in everything["entry"]} == {"Organization"}
    # The other hospital's system never sees them, and is not told about break-the-glass.
    system_view = _found(client, f"Condition?subject=Patient/{PATIENT}", UMCEP)
    assert _ids(system_view) == []
    assert not _withheld(system_view)


def test_consent_opens_the_plain_record_and_not_the_sensitive_one(
    client: TestClient, juarez: None
) -> None:
    _share(client)
    read = client.get(f"/fhir/Condition/{ASTHMA}", headers=DOCTOR)
    assert read.status_code == 200
    assert "hgcj" in read.json()["meta"]["source"]  # the source hospital shows
    assert _status(client, f"Patient/{PATIENT}") == 200
    assert _status(client, f"Condition/{ASTHMA}/_history/1") == 200
    # PSY is disclosed only where a provision names it: answered as if it did not exist.
    assert _status(client, f"Condition/{DEPRESSION}") == 404
    assert _status(client, f"Condition/{DEPRESSION}/_history") == 404
    bundle = _found(client, f"Condition?subject=Patient/{PATIENT}&_total=accurate")
    assert _ids(bundle) == [ASTHMA]
    assert bundle["total"] == 1
    assert _withheld(bundle)  # the depression record is withheld; break-the-glass opens it
    history = _found(client, "Condition/_history")
    assert [e["resource"]["id"] for e in history["entry"]] == [ASTHMA]
    assert history["total"] == 1
    included = _found(client, f"Condition?_id={ASTHMA}&_include=Condition:subject")
    assert _ids(included) == [ASTHMA, PATIENT]
    rev = _found(client, f"Patient?_id={PATIENT}&_revinclude=Condition:subject")
    assert _ids(rev) == [ASTHMA, PATIENT]
    chained = _found(client, "Condition?subject:Patient.name=ramirez")
    assert _ids(chained) == [ASTHMA]


def test_a_disclosure_is_audited_with_the_records_and_the_patient(
    client: TestClient, juarez: None
) -> None:
    _share(client)
    _found(client, f"Condition?subject=Patient/{PATIENT}")
    own = client.get(f"/fhir/Condition/{ASTHMA}", headers=MX_DOCTOR)
    assert own.status_code == 200
    with session_factory()() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == "disclosure")
        ).all()
    assert len(rows) == 1  # the Juárez clinician's own read is no disclosure
    (row,) = rows
    assert row.entities == [f"Condition/{ASTHMA}"]
    assert row.patients == [f"Patient/{PATIENT}"]
    assert row.org_code == "umcep"
    assert row.fhir_user == "Practitioner/umcep-dr-ruiz"
    assert row.outcome_detail is None


def test_revocation_takes_effect_for_the_next_request(client: TestClient, juarez: None) -> None:
    _share(client)
    assert _status(client, f"Condition/{ASTHMA}") == 200
    resource = consent_json(
        provision("permit", to=["us"], purposes=["TREAT"]),
        cid="hgcj-consent-1",
        patient=PATIENT,
        status="inactive",
    )
    put_resource(client, resource, OFFICER)
    assert _status(client, f"Condition/{ASTHMA}") == 404
    assert _ids(_found(client, f"Condition?subject=Patient/{PATIENT}")) == []


def test_an_expired_consent_opens_nothing(client: TestClient, juarez: None) -> None:
    _share(client, period=("2025-01-01", "2026-01-01"))
    assert _status(client, f"Condition/{ASTHMA}") == 404


def test_a_deny_in_one_consent_wins_over_a_permit_in_another(
    client: TestClient, juarez: None
) -> None:
    _share(client)
    _consent(
        client,
        provision("deny", to=["umcep"], classes=["Condition"]),
        cid="hgcj-consent-2",
    )
    assert _status(client, f"Condition/{ASTHMA}") == 404
    assert _status(client, f"Patient/{PATIENT}") == 200  # the deny names Conditions only


def test_a_permit_nested_in_a_deny_opens_what_it_names(client: TestClient, juarez: None) -> None:
    # Share with the US, except PSY records; but PSY ones may go to UMC El Paso itself.
    _consent(
        client,
        provision(
            "permit",
            to=["us"],
            purposes=["TREAT"],
            nested=[
                provision("deny", labels=["PSY"], nested=[provision("permit", to=["umcep"])]),
            ],
        ),
    )
    assert _status(client, f"Condition/{DEPRESSION}") == 200
    bundle = _found(client, f"Condition?subject=Patient/{PATIENT}")
    assert _ids(bundle) == [ASTHMA, DEPRESSION]
    assert not _withheld(bundle)


def test_a_label_named_by_the_permit_is_disclosed(client: TestClient, juarez: None) -> None:
    _consent(
        client,
        provision(
            "permit",
            to=["us"],
            purposes=["TREAT"],
            nested=[provision("permit", labels=["PSY"])],
        ),
    )
    read = client.get(f"/fhir/Condition/{DEPRESSION}", headers=DOCTOR)
    assert read.status_code == 200
    security = {(c["system"], c["code"]) for c in read.json()["meta"]["security"]}
    assert (ACT_CODE, "PSY") in security


def test_a_purpose_the_consent_does_not_name_opens_nothing(
    client: TestClient, juarez: None
) -> None:
    _share(client)
    payer = bearer("clinician", "umcep", purpose="HPAYMT")
    assert _status(client, f"Condition/{ASTHMA}", payer) == 404


def test_part2_record_carries_the_notice_and_the_consent_summary(
    client: TestClient, juarez: None
) -> None:
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
        "hgcj-c-sud",
        PATIENT,
        "F10.2",
        recorder={"reference": "HealthcareService/hgcj-adicciones"},
    )
    put_resource(client, detox, HGCJ)
    # A country-wide permit does not name the recipient (42 CFR 2.31): nothing.
    _share(client)
    assert _status(client, "Condition/hgcj-c-sud") == 404
    _consent(
        client,
        provision(
            "permit",
            to=["umcep"],
            custodian=["hgcj"],
            purposes=["TREAT"],
            labels=["42CFRPart2", "ETH"],
        ),
        cid="hgcj-consent-part2",
    )
    read = client.get("/fhir/Condition/hgcj-c-sud", headers={**DOCTOR, "Accept-Language": "es"})
    assert read.status_code == 200, read.text
    notices = {
        ext["extension"][0]["valueCode"]: ext["extension"][1]["valueString"]
        for ext in read.json()["meta"]["extension"]
    }
    assert set(notices) == {"redisclosure-notice", "consent-summary"}
    assert "Consent/hgcj-consent-part2" in notices["consent-summary"]


def test_the_patient_sees_its_own_records_and_no_one_elses(
    client: TestClient, juarez: None
) -> None:
    put_resource(client, patient(id="hgcj-p2", name=[{"family": "Otro", "given": ["Ana"]}]), HGCJ)
    put_resource(
        client,
        condition("hgcj-c-other", "hgcj-p2", "J45.9"),
        HGCJ,
    )
    me = bearer("patient", "hgcj", fhir_user=f"Patient/{PATIENT}")
    assert _status(client, f"Condition/{DEPRESSION}", me) == 200  # right of access
    assert _status(client, "Condition/hgcj-c-other", me) == 404
    assert _ids(_found(client, "Condition", me)) == [ASTHMA, DEPRESSION]


def test_break_the_glass_opens_the_linked_records_until_it_expires(
    client: TestClient, juarez: None
) -> None:
    from consent.models import BreakGlassGrant
    from tests.matching.test_mpi_match import MRN_HGCJ, MRN_UMCEP, person

    # José at both hospitals: the MPI links the two records automatically.
    put_resource(client, person(PATIENT, MRN_HGCJ), HGCJ)
    put_resource(client, person("umcep-p1", MRN_UMCEP), UMCEP)
    assert _status(client, f"Condition/{DEPRESSION}") == 404
    break_glass(client, "umcep-p1", DOCTOR)
    # Non-Part-2 records open, sensitive ones included, each with the notice.
    read = client.get(f"/fhir/Condition/{DEPRESSION}", headers=DOCTOR)
    assert read.status_code == 200
    codes = [e["extension"][0]["valueCode"] for e in read.json()["meta"]["extension"]]
    assert codes == ["break-the-glass-notice"]
    bundle = _found(client, f"Condition?subject=Patient/{PATIENT}")
    assert _ids(bundle) == [ASTHMA, DEPRESSION]
    assert not _withheld(bundle)
    linked = client.get("/fhir/Patient/umcep-p1", headers=DOCTOR).json()
    assert {"other": {"reference": f"Patient/{PATIENT}"}, "type": "seealso"} in linked["link"]
    with session_factory()() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == "disclosure")
        ).all()
        assert {r.outcome_detail for r in rows} == {"break-the-glass"}
        # The grant lapses: the next request sees nothing again.
        for row in session.scalars(select(BreakGlassGrant)):
            row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.commit()
    assert _status(client, f"Condition/{DEPRESSION}") == 404
    assert _withheld(_found(client, f"Condition?subject=Patient/{PATIENT}"))
