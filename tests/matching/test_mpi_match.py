"""Over HTTP: automatic links at import, `Patient.link` at read time through the gate,
`Patient/$match`, `Patient/$ihe-pix`, and their declaration in the CapabilityStatement."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationdefinition import OperationDefinition
from fhir.resources.R4B.parameters import Parameters
from sqlalchemy import ColumnElement, select, true

from exchange import service as store_service
from exchange.gate import Gate
from exchange.matching.models import MatchLink
from exchange.models import StoredResource
from puente.audit.models import AuditEntry
from puente.db import session_factory
from tests.factories import bearer, fhir_json
from tests.matching.mpi_fakes import install

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
CURP = "https://www.gob.mx/curp"
MRN_HGCJ = "urn:puente:mrn:hgcj"
MRN_UMCEP = "urn:puente:mrn:umcep"
MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


def person(res_id: str, mrn: str, **fields: Any) -> dict[str, Any]:
    """The same person as both hospitals register him."""
    return {
        "resourceType": "Patient",
        "id": res_id,
        "identifier": [
            {"system": CURP, "value": "RAAL850412HCHMNS01"},
            {"system": mrn, "value": res_id.upper()},
        ],
        "name": [{"family": "Ramírez Anchondo", "given": ["José", "Luis"]}],
        "gender": "male",
        "birthDate": "1985-04-12",
        "telecom": [{"system": "phone", "value": "+52 656 555 0142"}],
        "address": [{"city": "Ciudad Juárez", "postalCode": "32000", "country": "MX"}],
        **fields,
    }


def put(client: TestClient, resource: dict[str, Any], headers: dict[str, str]) -> Any:
    response = client.put(
        f"/fhir/Patient/{resource['id']}", json=resource, headers={**headers, **fhir_json()}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def import_ndjson(client: TestClient, resources: list[dict[str, Any]], org: str) -> None:
    body = "".join(json.dumps(r) + "\n" for r in resources).encode("utf-8")
    response = client.post(
        "/fhir/$import",
        content=body,
        headers={
            **bearer("system", org),
            "Prefer": "respond-async",
            "Content-Type": "application/fhir+ndjson",
        },
    )
    assert response.status_code == 202, response.text
    status = client.get(
        response.headers["Content-Location"].removeprefix("http://testserver"),
        headers=bearer("system", org),
    )
    assert status.status_code == 200, status.text


def register_systems() -> None:
    """Both hospitals, each with the identifier systems its Patients carry."""
    from puente.auth import service as auth

    registered = (("hgcj", "HGCJ", "MX", (CURP, MRN_HGCJ)), ("umcep", "UMC", "US", (MRN_UMCEP,)))
    with session_factory()() as session:
        for code, name, country, identifiers in registered:
            auth.add_system(
                session, code=code, name=name, country=country, identifier_systems=identifiers
            )
            store_service.register_hospital_organization(
                session, code=code, name=name, country=country
            )
        session.commit()


@pytest.fixture
def open_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record visible to everyone, as consents would allow: the one gate widened
    (tests/consent cover what the real gate opens)."""

    def everything(self: Gate, resource_type: str, **_: Any) -> ColumnElement[bool]:
        return true()

    monkeypatch.setattr(Gate, "clause", everything)
    monkeypatch.setattr(Gate, "superset", everything)
    monkeypatch.setattr(Gate, "permits", lambda self, rows: [True] * len(rows))
    monkeypatch.setattr(Gate, "sees_other_hospitals", property(lambda self: True))


def match(client: TestClient, *parameters: dict[str, Any], headers: dict[str, str] = HGCJ) -> Any:
    return client.post(
        "/fhir/Patient/$match",
        json={"resourceType": "Parameters", "parameter": list(parameters)},
        headers={**headers, **fhir_json()},
    )


def resource(res_id: str = "query", **fields: Any) -> dict[str, Any]:
    return {"name": "resource", "resource": person(res_id, MRN_HGCJ, **fields)}


# --- links made by the matcher, shown at read time ------------------------------------


def test_import_of_both_sides_links_the_same_person(client: TestClient, open_gate: None) -> None:
    register_systems()
    import_ndjson(client, [person("hgcj-100", MRN_HGCJ)], "hgcj")
    import_ndjson(client, [person("umcep-100", MRN_UMCEP)], "umcep")
    read = client.get("/fhir/Patient/hgcj-100", headers=HGCJ).json()
    assert read["link"] == [{"other": {"reference": "Patient/umcep-100"}, "type": "seealso"}]
    other = client.get("/fhir/Patient/umcep-100", headers=UMCEP).json()
    assert other["link"] == [{"other": {"reference": "Patient/hgcj-100"}, "type": "seealso"}]
    # Added at read time: the stored version is untouched, and vread shows what was sent.
    assert read["meta"]["versionId"] == "1"
    assert "link" not in client.get("/fhir/Patient/hgcj-100/_history/1", headers=HGCJ).json()
    found = client.get("/fhir/Patient?_id=hgcj-100", headers=HGCJ).json()
    assert found["entry"][0]["resource"]["link"] == read["link"]


def test_links_are_shown_only_towards_records_the_caller_may_see(client: TestClient) -> None:
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    with session_factory()() as session:
        assert session.scalars(select(MatchLink.status)).all() == ["linked"]
    # Until a consent says otherwise each system sees only its own records: no link shown.
    assert "link" not in client.get("/fhir/Patient/hgcj-1", headers=HGCJ).json()
    searched = client.get("/fhir/Patient?identifier=RAAL850412HCHMNS01", headers=HGCJ).json()
    assert [e["resource"]["id"] for e in searched["entry"]] == ["hgcj-1"]
    assert "link" not in searched["entry"][0]["resource"]


def test_a_sender_s_own_links_are_kept_and_deletion_unlinks(
    client: TestClient, open_gate: None
) -> None:
    own = {"other": {"reference": "Patient/hgcj-0"}, "type": "replaces"}
    put(client, person("hgcj-1", MRN_HGCJ, link=[own]), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    read = client.get("/fhir/Patient/hgcj-1", headers=HGCJ).json()
    assert read["link"] == [own, {"other": {"reference": "Patient/umcep-1"}, "type": "seealso"}]
    assert client.delete("/fhir/Patient/umcep-1", headers=UMCEP).status_code in (200, 204)
    assert client.get("/fhir/Patient/hgcj-1", headers=HGCJ).json()["link"] == [own]


def test_included_patients_carry_their_links(client: TestClient, open_gate: None) -> None:
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    visit = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": "Patient/hgcj-1"},
    }
    created = client.post("/fhir/Encounter", json=visit, headers={**HGCJ, **fhir_json()})
    assert created.status_code == 201, created.text
    found = client.get("/fhir/Encounter?_include=Encounter:subject", headers=HGCJ).json()
    included = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "include"]
    assert included[0]["link"] == [{"other": {"reference": "Patient/umcep-1"}, "type": "seealso"}]


# --- $match ---------------------------------------------------------------------------


def test_match_returns_a_searchset_best_first_with_grades(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    grades = install(monkeypatch)
    for n, grade in ((1, "possible"), (2, "certain"), (3, "probable"), (4, "certainly-not")):
        put(client, person(f"hgcj-{n}", MRN_HGCJ), HGCJ)
        grades.set("query", f"hgcj-{n}", grade)
    response = match(client, resource())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    Bundle.model_validate(body)
    assert body["type"] == "searchset"
    assert [e["resource"]["id"] for e in body["entry"]] == ["hgcj-2", "hgcj-3", "hgcj-1"]
    assert body["total"] == 3
    first = body["entry"][0]
    assert first["fullUrl"] == "http://testserver/fhir/Patient/hgcj-2"
    assert first["search"]["mode"] == "match"
    assert first["search"]["score"] == pytest.approx(0.999)
    assert first["search"]["extension"] == [{"url": MATCH_GRADE, "valueCode": "certain"}]
    scores = [e["search"]["score"] for e in body["entry"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)


def test_match_count_and_only_certain_matches(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    grades = install(monkeypatch)
    for n, grade in ((1, "probable"), (2, "certain"), (3, "possible")):
        put(client, person(f"hgcj-{n}", MRN_HGCJ), HGCJ)
        grades.set("query", f"hgcj-{n}", grade)
    counted = match(client, resource(), {"name": "count", "valueInteger": 2}).json()
    assert [e["resource"]["id"] for e in counted["entry"]] == ["hgcj-2", "hgcj-1"]
    only = {"name": "onlyCertainMatches", "valueBoolean": True}
    certain = match(client, resource(), only).json()
    assert [e["resource"]["id"] for e in certain["entry"]] == ["hgcj-2"]
    grades.set("query", "hgcj-1", "certain")  # two certain: no single answer
    assert match(client, resource(), only).json()["total"] == 0


def test_match_sees_only_what_the_caller_may_see(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    grades = install(monkeypatch)
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    grades.set("query", "hgcj-1", "certain")
    grades.set("query", "umcep-1", "certain")
    mine = match(client, resource(), headers=UMCEP).json()
    assert [e["resource"]["id"] for e in mine["entry"]] == ["umcep-1"]
    with session_factory()() as session:
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.subtype == "operation").order_by(AuditEntry.id)
        ).all()
    assert audited[-1].entities == ["Patient/umcep-1"]


def test_match_with_the_shipped_model_finds_the_same_person(client: TestClient) -> None:
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("hgcj-2", MRN_HGCJ, birthDate="1950-02-03", name=[{"family": "Soto"}]), HGCJ)
    body = match(client, resource(), {"name": "onlyCertainMatches", "valueBoolean": True}).json()
    assert [e["resource"]["id"] for e in body["entry"]] == ["hgcj-1"]
    assert body["entry"][0]["search"]["extension"][0]["valueCode"] == "certain"


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Parameters"},
        {"resourceType": "Parameters", "parameter": [{"name": "count", "valueInteger": 2}]},
        {
            "resourceType": "Parameters",
            "parameter": [resource(), {"name": "count", "valueInteger": 0}],
        },
        {
            "resourceType": "Parameters",
            "parameter": [resource(), {"name": "onlyCertainMatches", "valueString": "yes"}],
        },
        {
            "resourceType": "Parameters",
            "parameter": [resource(), {"name": "fuzz", "valueInteger": 1}],
        },
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": {"resourceType": "Observation"}}],
        },
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": person("x", MRN_HGCJ, gender=7)}],
        },
    ],
)
def test_bad_parameters_are_400_operation_outcome(client: TestClient, body: Any) -> None:
    response = client.post(
        "/fhir/Patient/$match",
        json=body,
        headers={**HGCJ, **fhir_json(), "Accept-Language": "es-MX"},
    )
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert "RAAL850412" not in response.text
    assert "Ramírez" not in response.text


def test_match_is_403_for_roles_without_patient_data(client: TestClient) -> None:
    response = match(client, resource(), headers=bearer("admin", "umcep"))
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


# --- $ihe-pix ---------------------------------------------------------------------------


def pix(client: TestClient, headers: dict[str, str] = HGCJ, **query: str) -> Any:
    return client.get("/fhir/Patient/$ihe-pix", params=query, headers=headers)


def test_pix_returns_the_linked_identifiers(client: TestClient, open_gate: None) -> None:
    register_systems()
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    response = pix(client, sourceIdentifier=f"{MRN_HGCJ}|HGCJ-1")
    assert response.status_code == 200, response.text
    body = response.json()
    Parameters.model_validate(body)
    assert {"name": "targetId", "valueReference": {"reference": "Patient/umcep-1"}} in body[
        "parameter"
    ]
    identifiers = [
        p["valueIdentifier"] for p in body["parameter"] if p["name"] == "targetIdentifier"
    ]
    assert {"system": MRN_UMCEP, "value": "UMCEP-1"} in identifiers
    narrowed = client.post(
        "/fhir/Patient/$ihe-pix",
        data={"sourceIdentifier": f"{MRN_HGCJ}|HGCJ-1", "targetSystem": MRN_UMCEP},
        headers=HGCJ,
    ).json()
    assert [p["valueIdentifier"] for p in narrowed["parameter"] if "valueIdentifier" in p] == [
        {"system": MRN_UMCEP, "value": "UMCEP-1"}
    ]
    # A recognized domain in which the person has no identifier: 200 with no parameter
    # (ITI-83 2:3.83.4.1.3 case 2). The CURP is registered (to HGCJ); UMC's record has one.
    bare = person("umcep-2", MRN_UMCEP, identifier=[{"system": MRN_UMCEP, "value": "U2"}])
    put(client, person("hgcj-2", MRN_HGCJ, birthDate="1990-01-01"), HGCJ)
    put(client, {**bare, "birthDate": "1990-01-01"}, UMCEP)
    case_two = pix(client, sourceIdentifier=f"{MRN_HGCJ}|HGCJ-2", targetSystem=CURP)
    assert case_two.status_code == 200, case_two.text
    assert "parameter" not in case_two.json()


def test_pix_answers_403_for_a_target_system_no_hospital_registers(
    client: TestClient, open_gate: None
) -> None:
    register_systems()
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    # ITI-83: "If the Patient Identifier Cross-reference Manager does not recognize the
    # targetSystem, it returns HTTP 403 Forbidden", even beside a recognized one.
    for targets in ("urn:other", f"{MRN_UMCEP},urn:other"):
        response = pix(client, sourceIdentifier=f"{MRN_HGCJ}|HGCJ-1", targetSystem=targets)
        assert response.status_code == 403, response.text
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "code-invalid"
        assert "targetSystem" in outcome["issue"][0]["details"]["text"]
        assert "urn:other" in outcome["issue"][0]["details"]["text"]
        assert "UMCEP-1" not in response.text
    spanish = pix(
        client,
        headers={**HGCJ, "Accept-Language": "es-MX"},
        sourceIdentifier=f"{MRN_HGCJ}|HGCJ-1",
        targetSystem="urn:other",
    )
    assert spanish.status_code == 403
    assert "ningún sistema hospitalario" in spanish.json()["issue"][0]["details"]["text"]


def test_pix_answers_400_for_a_source_domain_no_hospital_registers(
    client: TestClient, open_gate: None
) -> None:
    register_systems()
    # The record exists and carries the identifier, but its system is not registered to
    # any hospital system: the domain is not recognized (ITI-83 2:3.83.4.1.3), 400.
    put(client, person("hgcj-1", MRN_HGCJ, identifier=[{"system": "urn:x", "value": "7"}]), HGCJ)
    response = pix(client, sourceIdentifier="urn:x|7")
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["issue"][0]["code"] == "code-invalid"
    assert "sourceIdentifier" in outcome["issue"][0]["details"]["text"]
    assert "Patient/hgcj-1" not in response.text
    # Registering the system makes it a recognized domain; an unknown value is then 404.
    from puente.auth import service as auth

    with session_factory()() as session:
        auth.add_identifier_systems(session, code="hgcj", uris=["urn:x"])
        session.commit()
    assert pix(client, sourceIdentifier="urn:x|7").status_code == 200
    unknown = pix(client, sourceIdentifier="urn:x|8")
    assert unknown.status_code == 404
    assert unknown.json()["issue"][0]["code"] == "not-found"


def test_pix_goes_through_the_same_gate(client: TestClient) -> None:
    register_systems()
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    mine = pix(client, sourceIdentifier=f"{MRN_HGCJ}|HGCJ-1")
    assert mine.status_code == 200
    assert "parameter" not in mine.json()
    # Another hospital's record the gate withholds is answered as if it did not exist: the
    # domain is recognized, the identifier not (404), never 400 or 403.
    theirs = pix(client, sourceIdentifier=f"{MRN_UMCEP}|UMCEP-1")
    assert theirs.status_code == 404
    assert "UMCEP-1" not in theirs.text
    nobody = pix(client, sourceIdentifier=f"{MRN_UMCEP}|NOBODY")
    assert (nobody.status_code, nobody.json()["issue"]) == (404, theirs.json()["issue"])


@pytest.mark.parametrize("query", [{}, {"sourceIdentifier": "no-bar"}, {"sourceIdentifier": "|x"}])
def test_pix_needs_one_source_identifier(client: TestClient, query: dict[str, str]) -> None:
    response = client.get("/fhir/Patient/$ihe-pix", params=query, headers=HGCJ)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


# --- declared --------------------------------------------------------------------------


def test_operations_are_declared_with_definitions(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    declared = {op["name"]: op["definition"] for op in patient["operation"]}
    assert set(declared) >= {"match", "ihe-pix"}
    for url in declared.values():
        path = url.removeprefix("http://testserver")
        definition = client.get(path, headers=HGCJ)
        assert definition.status_code == 200
        OperationDefinition.model_validate(definition.json())


def test_no_stored_resource_carries_a_link(client: TestClient) -> None:
    put(client, person("hgcj-1", MRN_HGCJ), HGCJ)
    put(client, person("umcep-1", MRN_UMCEP), UMCEP)
    with session_factory()() as session:
        contents = session.scalars(select(StoredResource.content)).all()
    assert all("link" not in (c or {}) for c in contents)
