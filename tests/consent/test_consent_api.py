"""Consent through the FHIR API (issue 6, point 1): who writes it, Puente's rules on every
write, revocation seen by the next request, and the CapabilityStatement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from exchange.models import PUENTE_OWNER, StoredResource
from puente.auth import service as auth
from puente.cli import app
from puente.db import session_factory
from tests.consent.builders import consent_json, provision
from tests.factories import bearer, fhir_json, organizations, patient

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
OFFICER = bearer("consent-officer", "hgcj")


def _setup(client: TestClient) -> tuple[str, str]:
    """The demo Organizations, a Juárez patient and an El Paso one: their ids."""
    with session_factory()() as session:
        organizations(session)
        session.commit()
    juarez = client.post("/fhir/Patient", json=patient(), headers={**HGCJ, **fhir_json()})
    el_paso = client.post("/fhir/Patient", json=patient(), headers={**UMCEP, **fhir_json()})
    assert juarez.status_code == el_paso.status_code == 201
    return juarez.json()["id"], el_paso.json()["id"]


def _consent(patient_id: str, **kwargs: Any) -> dict[str, Any]:
    """Permit the United States' hospitals to see the patient's records for treatment."""
    resource = consent_json(
        provision("permit", to=["us"], purposes=["TREAT"]), patient=patient_id, **kwargs
    )
    del resource["id"]
    return resource


def _post(client: TestClient, resource: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post("/fhir/Consent", json=resource, headers={**headers, **fhir_json()})


def _owner(res_id: str) -> str:
    with session_factory()() as session:
        return session.scalars(
            select(StoredResource.owner).where(
                StoredResource.res_type == "Consent", StoredResource.res_id == res_id
            )
        ).one()


def _ids(client: TestClient, query: str, headers: dict[str, str]) -> list[str]:
    response = client.get(f"/fhir/Consent?{query}", headers=headers)
    assert response.status_code == 200
    return [entry["resource"]["id"] for entry in response.json().get("entry", [])]


def test_officer_creates_a_consent_for_its_hospitals_patient(client: TestClient) -> None:
    juarez, _ = _setup(client)
    response = _post(client, _consent(juarez), OFFICER)
    assert response.status_code == 201
    created = response.json()
    assert created["patient"] == {"reference": f"Patient/{juarez}"}
    assert _owner(created["id"]) == "hgcj"
    read = client.get(f"/fhir/Consent/{created['id']}", headers=OFFICER)
    assert read.status_code == 200
    assert read.json()["provision"]["actor"][0]["reference"] == {"reference": "Organization/us"}
    assert _ids(client, f"patient=Patient/{juarez}&actor=Organization/us", OFFICER) == [
        created["id"]
    ]
    assert _ids(client, "purpose=TREAT&scope=patient-privacy&category=59284-0", OFFICER) == [
        created["id"]
    ]
    assert _ids(client, "purpose=HPAYMT", OFFICER) == []


def test_officer_of_another_hospital_is_refused_as_if_the_patient_did_not_exist(
    client: TestClient,
) -> None:
    juarez, _ = _setup(client)
    el_paso_officer = bearer("consent-officer", "umcep")
    other = _post(client, _consent(juarez), el_paso_officer)
    nowhere = _post(client, _consent("does-not-exist"), el_paso_officer)
    assert other.status_code == nowhere.status_code == 403
    assert other.json()["issue"] == nowhere.json()["issue"]
    assert "own hospital" in other.json()["issue"][0]["details"]["text"]
    assert _ids(client, "", OFFICER) == []


def test_a_hospital_system_writes_consents_for_its_own_patients_only(client: TestClient) -> None:
    juarez, el_paso = _setup(client)
    assert _post(client, _consent(juarez), HGCJ).status_code == 201
    assert _post(client, _consent(el_paso), HGCJ).status_code == 403


def test_patient_writes_its_own_consent_owned_by_puente(client: TestClient) -> None:
    juarez, el_paso = _setup(client)
    juana = bearer("patient", "hgcj", fhir_user=f"Patient/{juarez}")
    response = _post(client, _consent(juarez), juana)
    assert response.status_code == 201
    assert _owner(response.json()["id"]) == PUENTE_OWNER
    # and reads it back, alone or among its Consents (its own compartment)
    own = response.json()["id"]
    assert client.get(f"/fhir/Consent/{own}", headers=juana).status_code == 200
    listed = client.get("/fhir/Consent", params={"patient": juarez}, headers=juana).json()
    assert [e["resource"]["id"] for e in listed.get("entry", [])] == [own]
    refused = _post(client, _consent(el_paso), juana)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"


def test_patient_revokes_only_its_own_consent(client: TestClient) -> None:
    juarez, el_paso = _setup(client)
    juana = bearer("patient", "hgcj", fhir_user=f"Patient/{juarez}")
    someone = bearer("patient", "umcep", fhir_user=f"Patient/{el_paso}")
    created = _post(client, _consent(juarez), juana).json()
    url = f"/fhir/Consent/{created['id']}"
    revoked = {**created, "status": "inactive"}
    # Another patient's puente Consent is not theirs: answered as if it did not exist.
    assert client.delete(url, headers=someone).status_code == 404
    patched = client.patch(
        url,
        json=[{"op": "replace", "path": "/status", "value": "inactive"}],
        headers={**someone, "Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 404
    stolen = client.put(url, json=revoked, headers={**someone, **fhir_json()})
    assert stolen.status_code == 403  # the body names someone else's Patient
    done = client.put(url, json=revoked, headers={**juana, **fhir_json()})
    assert done.status_code == 200
    assert done.json()["status"] == "inactive"
    assert done.json()["meta"]["versionId"] == "2"


def test_clinicians_and_analysts_do_not_write_consents(client: TestClient) -> None:
    juarez, _ = _setup(client)
    assert _post(client, _consent(juarez), bearer("clinician", "hgcj")).status_code == 403
    assert _post(client, _consent(juarez), bearer("analyst", None)).status_code == 403


def test_invalid_consent_is_422_naming_the_element(client: TestClient) -> None:
    juarez, _ = _setup(client)
    resource = _consent(juarez)
    resource["scope"]["coding"][0]["code"] = "research"
    resource["provision"]["actor"][0]["reference"] = {"reference": "Organization/nowhere"}
    response = _post(client, resource, OFFICER)
    assert response.status_code == 422
    expressions = {e for issue in response.json()["issue"] for e in issue.get("expression", [])}
    assert "Consent.scope" in expressions
    assert "Consent.provision.actor[0].reference" in expressions
    assert _ids(client, "", OFFICER) == []


def test_invalid_consent_is_refused_in_spanish_for_a_spanish_caller(client: TestClient) -> None:
    juarez, _ = _setup(client)
    resource = _consent(juarez)
    resource["scope"]["coding"][0]["code"] = "research"
    response = client.post(
        "/fhir/Consent",
        json=resource,
        headers={**OFFICER, **fhir_json(), "Accept-Language": "es-MX"},
    )
    assert response.status_code == 422
    english = _post(client, resource, OFFICER).json()["issue"][0]["details"]["text"]
    assert response.json()["issue"][0]["details"]["text"] != english


def test_a_patched_consent_is_checked_like_a_new_one(client: TestClient) -> None:
    juarez, _ = _setup(client)
    created = _post(client, _consent(juarez), OFFICER).json()
    response = client.patch(
        f"/fhir/Consent/{created['id']}",
        json=[{"op": "remove", "path": "/policyRule"}],
        headers={**OFFICER, "Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == 422
    assert (
        client.get(f"/fhir/Consent/{created['id']}", headers=OFFICER).json()["meta"]["versionId"]
        == "1"
    )


def test_revocation_takes_effect_for_the_next_request(client: TestClient) -> None:
    juarez, _ = _setup(client)
    created = _post(client, _consent(juarez), OFFICER).json()
    assert _ids(client, "status=active", OFFICER) == [created["id"]]
    revoked = client.put(
        f"/fhir/Consent/{created['id']}",
        json={**created, "status": "inactive"},
        headers={**OFFICER, **fhir_json(), "If-Match": 'W/"1"'},
    )
    assert revoked.status_code == 200
    assert _ids(client, "status=active", OFFICER) == []
    assert _ids(client, "status=inactive", OFFICER) == [created["id"]]
    assert client.delete(f"/fhir/Consent/{created['id']}", headers=OFFICER).status_code == 204
    assert client.get(f"/fhir/Consent/{created['id']}", headers=OFFICER).status_code == 410
    history = client.get(f"/fhir/Consent/{created['id']}/_history", headers=OFFICER)
    assert history.json()["total"] == 3


def test_capability_statement_lists_consent_with_its_search_params(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    consent = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Consent")
    names = {p["name"] for p in consent["searchParam"]}
    assert {
        "patient",
        "status",
        "scope",
        "category",
        "actor",
        "purpose",
        "period",
        "data",
        "organization",
    } <= names
    assert {i["code"] for i in consent["interaction"]} >= {"create", "update", "delete"}


def test_a_patients_conditional_writes_see_only_its_own_consents(client: TestClient) -> None:
    juarez, el_paso = _setup(client)
    juana = bearer("patient", "hgcj", fhir_user=f"Patient/{juarez}")
    someone = bearer("patient", "umcep", fhir_user=f"Patient/{el_paso}")
    theirs = _post(client, _consent(juarez), juana).json()
    # Both puente-owned and active: the other patient's must not count as a match.
    gone = client.delete("/fhir/Consent?status=active", headers=someone)
    assert gone.status_code == 404
    mine = client.post(
        "/fhir/Consent",
        json=_consent(el_paso),
        headers={**someone, **fhir_json(), "If-None-Exist": "status=active"},
    )
    assert mine.status_code == 201
    assert mine.json()["id"] != theirs["id"]
    again = client.post(
        "/fhir/Consent",
        json=_consent(el_paso),
        headers={**someone, **fhir_json(), "If-None-Exist": "status=active"},
    )
    assert again.status_code == 200
    assert again.json()["id"] == mine.json()["id"]
    assert client.delete("/fhir/Consent?status=active", headers=juana).status_code == 204
    assert _owner(theirs["id"]) == PUENTE_OWNER
    assert (
        client.post(
            "/fhir/Consent",
            json=_consent(el_paso),
            headers={**someone, **fhir_json(), "If-None-Exist": "status=active"},
        ).json()["id"]
        == mine.json()["id"]
    )


def test_a_hospital_imports_its_patients_consents_checked_like_api_writes(
    client: TestClient, tmp_path: Path
) -> None:
    juarez, el_paso = _setup(client)
    with session_factory()() as session:
        auth.add_system(session, code="hgcj", name="HGCJ", country="MX")
        session.commit()
    ours = {**_consent(juarez), "id": "hgcj-consent-1"}
    theirs = {**_consent(el_paso), "id": "hgcj-consent-2"}
    (tmp_path / "consents.ndjson").write_text(
        "\n".join(json.dumps(r) for r in (ours, theirs)) + "\n", encoding="utf-8"
    )
    result = CliRunner().invoke(
        app, ["import", str(tmp_path / "consents.ndjson"), "--system", "hgcj", "--quiet"]
    )
    assert result.exit_code == 1  # the line about another hospital's patient is rejected
    assert "created 1" in result.output
    assert "rejected 1" in result.output
    assert _owner("hgcj-consent-1") == "hgcj"


def test_a_patients_own_consent_is_part_of_its_hospitals_record(client: TestClient) -> None:
    """Consent officers manage their hospital's patients' Consents, those the patients
    wrote themselves included; another hospital's officer is answered as if it did not
    exist; the Consent stays the patient's to change."""
    juarez, _ = _setup(client)
    juana = bearer("patient", "hgcj", fhir_user=f"Patient/{juarez}")
    own = _post(client, _consent(juarez), juana).json()
    url = f"/fhir/Consent/{own['id']}"
    assert client.get(url, headers=OFFICER).status_code == 200
    assert _ids(client, f"patient={juarez}", OFFICER) == [own["id"]]
    assert client.get(url, headers=bearer("clinician", "hgcj")).status_code == 200
    elsewhere = bearer("consent-officer", "umcep")
    assert client.get(url, headers=elsewhere).status_code == 404
    assert _ids(client, f"patient={juarez}", elsewhere) == []
    history = client.get(f"{url}/_history", headers=OFFICER)
    assert history.status_code == 200
    assert history.json()["total"] == 1
    revoked = {**own, "status": "inactive"}
    # the id is outside the hospital's namespace: the same 400 as for any such PUT
    refused = client.put(url, json=revoked, headers={**OFFICER, **fhir_json()})
    assert refused.status_code == 400, refused.text
    assert client.delete(url, headers=OFFICER).status_code == 404
    assert client.get(url, headers=juana).json()["status"] == "active"


def _bundle(*entries: tuple[str | None, dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                **({"fullUrl": full_url} if full_url else {}),
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for full_url, resource in entries
        ],
    }


def test_a_transaction_writes_a_patient_and_the_consent_about_it_together(
    client: TestClient,
) -> None:
    _, el_paso = _setup(client)
    newcomer = "urn:uuid:6a1f7c2e-0000-4000-8000-00000000c0de"
    about_newcomer = {**_consent("x"), "patient": {"reference": newcomer}}
    written = client.post(
        "/fhir",
        json=_bundle((newcomer, patient()), (None, about_newcomer)),
        headers={**HGCJ, **fhir_json()},
    )
    assert written.status_code == 200, written.text
    new_patient, new_consent = (e["resource"] for e in written.json()["entry"])
    assert new_consent["patient"]["reference"] == f"Patient/{new_patient['id']}"
    assert _ids(client, f"patient={new_patient['id']}", HGCJ) == [new_consent["id"]]
    # A Consent about another hospital's patient fails the whole Bundle, naming its entry.
    refused = client.post(
        "/fhir",
        json=_bundle(
            ("urn:uuid:6a1f7c2e-0000-4000-8000-00000000beef", patient()),
            (None, _consent(el_paso)),
        ),
        headers={**HGCJ, **fhir_json()},
    )
    assert refused.status_code == 403
    expressions = [x for i in refused.json()["issue"] for x in i.get("expression", [])]
    assert any(x.startswith("Bundle.entry[1]") for x in expressions)
    assert _ids(client, f"patient={el_paso}", UMCEP) == []
