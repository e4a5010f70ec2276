"""From the caller and a stored resource to what the engine reads."""

from __future__ import annotations

import datetime as dt

from consent.codes import ACT_CODE, Label
from consent.engine import decide
from consent.facts import clinical_time, patient_of, record_facts, requester_for
from consent.policy import default_policy
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from tests.consent.builders import JUANA, NOW, grant, share

UTC = dt.UTC


def test_requester_for_a_clinician_and_a_patient() -> None:
    doctor = Caller("u1", Role.CLINICIAN, "umcep", "US", fhir_user="Practitioner/7")
    request = requester_for(doctor, break_glass=[grant()])
    assert (request.role, request.system, request.organization) == (
        "clinician",
        "umcep",
        "Organization/umcep",
    )
    assert (request.country, request.country_organization) == ("US", "Organization/us")
    assert (request.purpose, request.patient, len(request.break_glass)) == ("TREAT", None, 1)

    juana = Caller(
        "u2", Role.PATIENT, None, None, fhir_user="Patient/hgcj-p1", purpose_of_use="PATRQT"
    )
    person = requester_for(juana)
    assert (person.patient, person.purpose, person.organization) == ("hgcj-p1", "PATRQT", None)


def test_patient_of_each_kind_of_resource() -> None:
    assert patient_of({"resourceType": "Patient", "id": "hgcj-p1"}) == "hgcj-p1"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Patient/a"}}) == "a"
    assert (
        patient_of({"resourceType": "Immunization", "patient": {"reference": "Patient/b"}}) == "b"
    )
    assert patient_of({"resourceType": "Consent", "patient": {"reference": "Patient/c"}}) == "c"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) is None
    assert patient_of({"resourceType": "Practitioner", "id": "p"}) is None
    assert patient_of({"resourceType": "Condition"}) is None


def test_clinical_time_covers_the_whole_precision() -> None:
    day = clinical_time({"resourceType": "Observation", "effectiveDateTime": "2025-06-01"})
    assert day == (
        dt.datetime(2025, 6, 1, tzinfo=UTC),
        dt.datetime(2025, 6, 1, 23, 59, 59, 999999, tzinfo=UTC),
    )
    stay = clinical_time({"resourceType": "Encounter", "period": {"start": "2025-06-01T08:00:00Z"}})
    assert stay == (dt.datetime(2025, 6, 1, 8, tzinfo=UTC), None)
    onset = clinical_time(
        {"resourceType": "Condition", "onsetDateTime": "2019", "recordedDate": "2025"}
    )
    assert onset[0] == dt.datetime(2019, 1, 1, tzinfo=UTC)
    assert clinical_time({"resourceType": "Patient"}) == (None, None)
    assert clinical_time({"resourceType": "Observation", "effectiveDateTime": "June"}) == (
        None,
        None,
    )


def test_record_facts_of_a_stored_resource_decide_like_the_table() -> None:
    resource = {
        "resourceType": "Observation",
        "id": "hgcj-o1",
        "subject": {"reference": "Patient/hgcj-p1"},
        "effectiveDateTime": "2025-06-01T10:00:00-06:00",
    }
    facts = record_facts(
        resource, owner="hgcj", owner_country="MX", labels=[Label(ACT_CODE, "PSY")], patients=JUANA
    )
    assert facts.reference == "Observation/hgcj-o1"
    assert (facts.owner_organization, facts.owner_country_organization) == (
        "Organization/hgcj",
        "Organization/mx",
    )
    assert facts.start == dt.datetime(2025, 6, 1, 16, tzinfo=UTC)
    doctor = requester_for(Caller("u1", Role.CLINICIAN, "umcep", "US"))
    assert decide(doctor, facts, [share("us")], default_policy(), now=NOW).rule == (
        "label-not-permitted"
    )
