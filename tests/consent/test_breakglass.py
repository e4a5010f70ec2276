"""Break-the-glass (issue 6, item 7) over HTTP: the grant and its bounds, who may, the
audit row, the consent officers' review queue per hospital, the patient's notice
delivered to a real SMTP server in their language, and expiry (`active_grants`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.operationdefinition import OperationDefinition
from fhir.resources.R4B.parameters import Parameters
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.breakglass import active_grants
from consent.breakglass_service import local_date
from consent.engine import BreakGlass
from consent.models import BreakGlassGrant
from puente.audit.models import AuditEntry
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from puente.db import session_factory
from tests.factories import bearer, fhir_json, organizations
from tests.matching.mpi_fakes import Grades, install
from tests.notify.conftest import Mailbox, mailbox, smtp  # noqa: F401 - fixtures

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
DOCTOR = bearer("clinician", "umcep", fhir_user="Practitioner/umcep-doc")
DOCTOR_ES = {**DOCTOR, "Accept-Language": "es-MX"}
HGCJ_OFFICER = bearer("consent-officer", "hgcj")
UMCEP_OFFICER = bearer("consent-officer", "umcep")
REASON = "Unconscious on arrival at the ER; no relative reachable."


@pytest.fixture
def grades(monkeypatch: pytest.MonkeyPatch) -> Grades:
    return install(monkeypatch)


def person(res_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": res_id,
        "name": [{"family": "Ramírez Anchondo", "given": ["José", "Luis"]}],
        "gender": "male",
        "birthDate": "1985-04-12",
        **fields,
    }


def email(address: str) -> dict[str, str]:
    return {"system": "email", "value": address}


def speaks(*codes: str, preferred: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": code}]},
            **({"preferred": True} if code == preferred else {}),
        }
        for code in codes
    ]


def put(client: TestClient, resource: dict[str, Any]) -> None:
    headers = HGCJ if resource["id"].startswith("hgcj") else UMCEP
    response = client.put(
        f"/fhir/Patient/{resource['id']}", json=resource, headers={**headers, **fhir_json()}
    )
    assert response.status_code in (200, 201), response.text


def setup(client: TestClient, grades: Grades) -> None:
    """El Paso's umcep-1 is linked (MPI) to Juárez's hgcj-1; umcep-2 is linked to nobody."""
    with session_factory()() as session:
        organizations(session)
        session.commit()
    grades.set("hgcj-1", "umcep-1", "certain")
    put(
        client, person("hgcj-1", telecom=[email("jose@example.org")], communication=speaks("es-MX"))
    )
    put(
        client,
        person(
            "umcep-1",
            telecom=[email("joe@example.org"), email("JOSE@example.org")],
            communication=speaks("es-MX", "en-US", preferred="en-US"),
        ),
    )
    put(client, person("umcep-2", name=[{"family": "Soto", "given": ["Ana"]}], gender="female"))


def body(reason: Any = REASON, minutes: Any = None) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    if reason is not None:
        parameters.append({"name": "reason", "valueString": reason})
    if minutes is not None:
        parameters.append({"name": "minutes", "valueInteger": minutes})
    return {"resourceType": "Parameters", "parameter": parameters}


def glass(
    client: TestClient, res_id: str = "umcep-1", headers: dict[str, str] = DOCTOR, **kwargs: Any
) -> Any:
    return client.post(
        f"/fhir/Patient/{res_id}/$break-the-glass",
        json=body(**kwargs),
        headers={**headers, **fhir_json()},
    )


def granted(client: TestClient, res_id: str = "umcep-1", **kwargs: Any) -> str:
    response = glass(client, res_id, **kwargs)
    assert response.status_code == 201, response.text
    return str(response.json()["parameter"][0]["valueIdentifier"]["value"])


def values(parameters: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for item in parameters["parameter"]:
        (key,) = [k for k in item if k.startswith("value")]
        found[item["name"]] = item[key]
    return found


def stored(grant_id: str) -> BreakGlassGrant:
    with session_factory()() as session:
        grant = session.get(BreakGlassGrant, grant_id)
        assert grant is not None
        session.expunge(grant)
        return grant


def grants() -> list[BreakGlassGrant]:
    with session_factory()() as session:
        return list(session.scalars(select(BreakGlassGrant)))


def audit_rows(subtype: str) -> list[AuditEntry]:
    with session_factory()() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.event_type == "break-the-glass", AuditEntry.subtype == subtype)
                .order_by(AuditEntry.id)
            )
        )


def issue(response: Any) -> dict[str, Any]:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return dict(outcome["issue"][0])


# -- the grant ---------------------------------------------------------------------------


def test_a_clinician_breaks_the_glass_for_a_patient_of_their_hospital(
    client: TestClient, grades: Grades
) -> None:
    setup(client, grades)
    response = glass(client, headers=DOCTOR_ES)
    assert response.status_code == 201, response.text
    Parameters.model_validate(response.json())
    out = values(response.json())
    assert out["patient"] == {"reference": "Patient/umcep-1"}
    assert out["purpose"]["code"] == "ETREAT"
    assert out["notice"].startswith("Abierto mediante acceso de emergencia")
    grant = stored(out["grant"]["value"])
    assert grant.clinician == "clinician@umcep"
    assert grant.clinician_fhir_user == "Practitioner/umcep-doc"
    assert (grant.org_code, grant.country) == ("umcep", "US")
    assert grant.patient_id == "umcep-1"
    assert grant.reason == REASON
    assert grant.status == "open"
    assert grant.expires_at - grant.granted_at == dt.timedelta(minutes=60)  # the policy's default
    assert dt.datetime.fromisoformat(out["expires"]) == grant.expires_at


def test_the_grant_is_audited_in_its_request(client: TestClient, grades: Grades) -> None:
    setup(client, grades)
    grant_id = granted(client)
    (row,) = audit_rows("grant")
    assert row.action == "E"
    assert row.outcome == 0
    assert row.entities == [f"BreakGlassGrant/{grant_id}"]
    # the Patient it was made for, and the linked record on the other side it opens
    assert row.patients == ["Patient/umcep-1", "Patient/hgcj-1"]
    assert row.agent == "clinician@umcep"
    assert row.agent_role == "clinician"


def test_minutes_are_bounded_by_the_policy(client: TestClient, grades: Grades) -> None:
    setup(client, grades)
    grant = stored(granted(client, minutes=240))
    assert grant.expires_at - grant.granted_at == dt.timedelta(minutes=240)
    for minutes in (241, 0, -5, "30"):
        response = glass(client, minutes=minutes)
        assert response.status_code == 400, minutes
        assert issue(response)["code"] == "invalid"
    too_long = glass(client, headers=DOCTOR_ES, minutes=241)
    assert "de 1 a 240" in issue(too_long)["details"]["text"]
    assert len(grants()) == 1


@pytest.mark.parametrize("reason", [None, "", "too short", "   short    ", 42, "x" * 2001])
def test_a_reason_of_10_to_2000_characters_is_required(
    client: TestClient, grades: Grades, reason: Any
) -> None:
    setup(client, grades)
    response = glass(client, headers=DOCTOR_ES, reason=reason)
    assert response.status_code == 400
    text = issue(response)["details"]["text"]
    assert "reason" in text
    assert REASON not in response.text
    assert grants() == []
    (refused,) = audit_rows("grant")
    assert refused.outcome != 0


def test_a_body_other_than_its_parameters_is_refused(client: TestClient, grades: Grades) -> None:
    setup(client, grades)
    for payload in (
        {"resourceType": "Patient"},
        {"resourceType": "Parameters", "parameter": [{"name": "why", "valueString": REASON}]},
        {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueCode": "x"}]},
    ):
        response = client.post(
            "/fhir/Patient/umcep-1/$break-the-glass",
            json=payload,
            headers={**DOCTOR, **fhir_json()},
        )
        assert response.status_code == 400, payload
        assert issue(response)["code"] == "invalid"


@pytest.mark.parametrize(
    "headers", [UMCEP, UMCEP_OFFICER, bearer("patient", "umcep", fhir_user="Patient/umcep-1")]
)
def test_only_clinicians_may_break_the_glass(
    client: TestClient, grades: Grades, headers: dict[str, str]
) -> None:
    setup(client, grades)
    response = glass(client, headers={**headers, "Accept-Language": "es"})
    assert response.status_code == 403
    assert issue(response)["code"] == "forbidden"
    assert "Solo el personal clínico" in issue(response)["details"]["text"]
    assert grants() == []


def test_a_patient_the_clinician_cannot_read_is_not_found_exactly_as_a_read(
    client: TestClient, grades: Grades
) -> None:
    setup(client, grades)
    for res_id in ("hgcj-1", "umcep-nobody"):
        response = glass(client, res_id)
        read = client.get(f"/fhir/Patient/{res_id}", headers=DOCTOR)
        assert response.status_code == read.status_code == 404
        assert issue(response)["code"] == issue(read)["code"]
        assert issue(response)["details"] == issue(read)["details"]
    assert grants() == []


def test_the_operation_is_declared(client: TestClient) -> None:
    metadata = client.get("/fhir/metadata").json()
    (patient,) = [r for r in metadata["rest"][0]["resource"] if r["type"] == "Patient"]
    operations = {op["name"]: op["definition"] for op in patient.get("operation", [])}
    url = "http://testserver/fhir/OperationDefinition/Patient-break-the-glass"
    assert operations["break-the-glass"] == url
    served = client.get("/fhir/OperationDefinition/Patient-break-the-glass", headers=DOCTOR)
    assert served.status_code == 200
    definition = OperationDefinition.model_validate(served.json())
    assert definition.url == url
    assert definition.instance is True
    assert {p.name for p in definition.parameter or []} >= {"reason", "minutes", "expires"}


# -- expiry --------------------------------------------------------------------------------


def _grant(session: Session, *, clinician: str, patient: str, expires: dt.datetime) -> None:
    session.add(
        BreakGlassGrant(
            clinician=clinician,
            org_code="umcep",
            country="US",
            patient_id=patient,
            reason=REASON,
            purpose="ETREAT",
            granted_at=expires - dt.timedelta(hours=1),
            expires_at=expires,
        )
    )
    session.flush()


def test_active_grants_are_this_clinician_s_unexpired_ones(db: Session) -> None:
    now = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
    _grant(
        db, clinician="clinician@umcep", patient="umcep-1", expires=now + dt.timedelta(minutes=5)
    )
    _grant(
        db, clinician="clinician@umcep", patient="umcep-2", expires=now - dt.timedelta(minutes=1)
    )
    _grant(db, clinician="clinician@umcep", patient="umcep-3", expires=now)  # ends at `now`
    _grant(db, clinician="other@umcep", patient="umcep-4", expires=now + dt.timedelta(hours=1))
    doctor = Caller(subject="clinician@umcep", role=Role.CLINICIAN, org_code="umcep", country="US")
    assert active_grants(db, doctor, now=now) == (
        BreakGlass(patient="umcep-1", expires=now + dt.timedelta(minutes=5)),
    )
    later = now + dt.timedelta(minutes=10)
    assert active_grants(db, doctor, now=later) == ()
    earlier = now - dt.timedelta(minutes=30)
    assert [g.patient for g in active_grants(db, doctor, now=earlier)] == [
        "umcep-2",
        "umcep-3",
        "umcep-1",
    ]
    # the same subject in another role, or another hospital's token, holds none of them
    officer = Caller(subject="clinician@umcep", role=Role.CONSENT_OFFICER, org_code="umcep",
                     country="US")  # fmt: skip
    assert active_grants(db, officer, now=earlier) == ()
    elsewhere = Caller(
        subject="clinician@umcep", role=Role.CLINICIAN, org_code="hgcj", country="MX"
    )
    assert active_grants(db, elsewhere, now=earlier) == ()


def test_a_grant_made_over_http_is_active_until_it_expires(
    client: TestClient, grades: Grades
) -> None:
    setup(client, grades)
    grant = stored(granted(client, minutes=15))
    doctor = Caller(subject="clinician@umcep", role=Role.CLINICIAN, org_code="umcep", country="US")
    with session_factory()() as session:
        assert active_grants(session, doctor, now=grant.granted_at) == (
            BreakGlass("umcep-1", grant.expires_at),
        )
        assert active_grants(session, doctor, now=grant.expires_at) == ()


# -- the review queue ------------------------------------------------------------------------


def queue(client: TestClient, headers: dict[str, str], **params: str) -> Any:
    response = client.get("/btg/reviews", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_officers_see_their_clinicians_grants_and_those_that_opened_their_records(
    client: TestClient, grades: Grades
) -> None:
    setup(client, grades)
    linked = granted(client, "umcep-1")
    alone = granted(client, "umcep-2", reason="Anaphylaxis, unable to give history.")
    mine = queue(client, UMCEP_OFFICER)
    assert mine["total"] == 2
    assert [item["id"] for item in mine["items"]] == [alone, linked]  # newest first
    first = mine["items"][1]
    assert first["patient"] == "Patient/umcep-1"
    assert first["linked"] == ["Patient/hgcj-1"]
    assert first["reason"] == REASON
    assert first["status"] == "open"
    assert first["active"] is True
    theirs = queue(client, HGCJ_OFFICER)  # Juárez's record was opened by the first one
    assert [item["id"] for item in theirs["items"]] == [linked]
    hidden = client.get(f"/btg/reviews/{alone}", headers=HGCJ_OFFICER)
    assert hidden.status_code == 404
    assert issue(hidden)["code"] == "not-found"
    assert client.get(f"/btg/reviews/{linked}", headers=HGCJ_OFFICER).status_code == 200
    listed = audit_rows("review-list")[-1]
    assert listed.entities == [f"BreakGlassGrant/{linked}"]
    assert listed.patients == ["Patient/umcep-1", "Patient/hgcj-1"]


def test_the_review_queue_is_for_consent_officers(client: TestClient, grades: Grades) -> None:
    setup(client, grades)
    grant_id = granted(client)
    for headers in (DOCTOR, HGCJ, bearer("admin", None)):
        response = client.get("/btg/reviews", headers={**headers, "Accept-Language": "es"})
        assert response.status_code == 403
        assert "oficiales de consentimientos" in issue(response)["details"]["text"]
        assert client.get(f"/btg/reviews/{grant_id}", headers=headers).status_code == 403
    assert client.get("/btg/reviews").status_code == 401


def test_an_officer_comments_and_closes_a_review(client: TestClient, grades: Grades) -> None:
    setup(client, grades)
    grant_id = granted(client)
    commented = client.post(
        f"/btg/reviews/{grant_id}/comments",
        json={"text": "Asked the ER lead for the chart note."},
        headers=HGCJ_OFFICER,
    )
    assert commented.status_code == 201, commented.text
    assert [c["text"] for c in commented.json()["comments"]] == [
        "Asked the ER lead for the chart note."
    ]
    assert commented.json()["comments"][0]["author"] == "consent-officer:consent-officer@hgcj"
    empty = client.post(
        f"/btg/reviews/{grant_id}/comments", json={"text": "  "}, headers=HGCJ_OFFICER
    )
    assert empty.status_code == 400
    closed = client.post(
        f"/btg/reviews/{grant_id}/close",
        json={"comment": "Justified: unconscious patient."},
        headers=UMCEP_OFFICER,
    )
    assert closed.status_code == 200, closed.text
    review = closed.json()
    assert review["status"] == "closed"
    assert review["closed_by"] == "consent-officer:consent-officer@umcep"
    assert [c["text"] for c in review["comments"]] == [
        "Asked the ER lead for the chart note.",
        "Justified: unconscious patient.",
    ]
    again = client.post(f"/btg/reviews/{grant_id}/close", headers=HGCJ_OFFICER)
    assert again.status_code == 409
    assert audit_rows("review-close")[-1].outcome != 0  # the refused close is on record too
    assert queue(client, HGCJ_OFFICER, status="open")["total"] == 0
    assert [i["id"] for i in queue(client, HGCJ_OFFICER, status="closed")["items"]] == [grant_id]
    read = client.get(f"/btg/reviews/{grant_id}", headers=HGCJ_OFFICER).json()
    assert len(read["comments"]) == 2
    for subtype in ("review-comment", "review-close", "review-read"):
        row = [r for r in audit_rows(subtype) if r.outcome == 0][-1]
        assert row.entities == [f"BreakGlassGrant/{grant_id}"]
        assert "Patient/hgcj-1" in row.patients
    assert (
        client.get("/btg/reviews", params={"status": "pending"}, headers=HGCJ_OFFICER).status_code
        == 400
    )


def test_open_reviews_come_before_closed_ones(client: TestClient, grades: Grades) -> None:
    setup(client, grades)
    older = granted(client)
    newer = granted(client)
    assert client.post(f"/btg/reviews/{newer}/close", headers=UMCEP_OFFICER).status_code == 200
    assert [i["id"] for i in queue(client, UMCEP_OFFICER)["items"]] == [older, newer]


# -- the patient's notice ----------------------------------------------------------------------


def test_the_patient_is_told_at_each_address_in_their_language(
    client: TestClient,
    grades: Grades,
    smtp: Mailbox,  # noqa: F811 - the fixture
) -> None:
    setup(client, grades)
    grant = stored(granted(client))
    by_address = {r.rcpt_tos[0].lower(): r.message for r in smtp.received}
    # umcep-1's two addresses (English preferred), hgcj-1's one (Spanish); the address both
    # records carry gets one message, in the language of the grant's own record
    assert sorted(by_address) == ["joe@example.org", "jose@example.org"]
    english, spanish = by_address["joe@example.org"], by_address["jose@example.org"]
    assert english["Subject"] == "Emergency access to your health records"
    assert english["Content-Language"] == "en-US"
    text = english.get_content()
    assert "A clinician at University Medical Center of El Paso opened your health records" in text
    assert local_date(grant.granted_at, "en_US") in text
    assert "accounting of who has seen your records" in text
    assert REASON not in text
    assert spanish["Content-Language"] == "en-US"  # found first on the English-speaking record
    again = granted(client, "umcep-2")
    assert again  # a record without an address: no message, the grant stands
    assert len(smtp.received) == 2


def test_a_spanish_speaking_patient_reads_it_in_spanish(
    client: TestClient,
    grades: Grades,
    smtp: Mailbox,  # noqa: F811 - the fixture
) -> None:
    with session_factory()() as session:
        organizations(session)
        session.commit()
    put(client, person("umcep-7", telecom=[email("ana@example.org")], communication=speaks("es")))
    grant = stored(granted(client, "umcep-7"))
    (received,) = smtp.received
    mail = received.message
    assert mail["Subject"] == "Acceso de emergencia a su expediente clínico"
    assert mail["Content-Language"] == "es-MX"
    text = mail.get_content()
    assert "Un profesional de la salud de University Medical Center of El Paso" in text
    assert local_date(grant.granted_at, "es_MX") in text
    assert " de 20" in local_date(grant.granted_at, "es_MX")  # "24 de noviembre de 2026"
    assert REASON not in text
    assert "relación de quién ha visto su expediente" in text


def test_without_a_language_the_hospital_s_country_decides(
    client: TestClient,
    grades: Grades,
    smtp: Mailbox,  # noqa: F811 - the fixture
) -> None:
    with session_factory()() as session:
        organizations(session)
        session.commit()
    grades.set("hgcj-8", "umcep-8", "certain")
    put(client, person("hgcj-8", telecom=[email("mx@example.org")]))
    put(client, person("umcep-8", telecom=[email("us@example.org")]))
    granted(client, "umcep-8")
    languages = {r.rcpt_tos[0]: r.message["Content-Language"] for r in smtp.received}
    assert languages == {"us@example.org": "en-US", "mx@example.org": "es-MX"}


def test_the_notice_date_is_the_border_s_calendar_day() -> None:
    """The date is the border's calendar day (PUENTE_TIMEZONE), not UTC's."""
    late = dt.datetime(2026, 11, 25, 3, 30, tzinfo=dt.UTC)  # 20:30 on the 24th in Juárez
    assert local_date(late, "en_US") == "November 24, 2026"
    assert local_date(late, "es_MX") == "24 de noviembre de 2026"


def test_an_unknown_time_zone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from puente.settings import Settings

    monkeypatch.setenv("PUENTE_TIMEZONE", "America/Atlantis")
    with pytest.raises(ValidationError, match="PUENTE_TIMEZONE"):
        Settings()
    monkeypatch.setenv("PUENTE_TIMEZONE", "America/Denver")
    assert Settings().timezone == "America/Denver"
