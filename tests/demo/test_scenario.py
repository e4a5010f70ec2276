"""The demo scenario loads once through the public services and tells a newcomer how to call."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select

from demo import scenario
from puente.auth.models import SmartApp, UserAccount
from puente.db import session_factory
from puente.settings import get_settings


@pytest.fixture(autouse=True)
def demo_base_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The demo's own address: its API-reference app redirects to a loopback URL."""
    monkeypatch.setenv("PUENTE_BASE_URL", "http://127.0.0.1:8000")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run() -> tuple[bool, str]:
    out = io.StringIO()
    loaded = scenario.run(Console(file=out, width=400), synthetic_patients=12)
    return loaded, out.getvalue()


def test_loads_once_then_skips(client: TestClient) -> None:
    loaded, first = _run()
    assert loaded
    again, second = _run()
    assert not again
    assert "already loaded" in second
    assert "(shown at first load only)" in second
    assert "(shown at first load only)" not in first
    with session_factory()() as session:
        emails = set(session.scalars(select(UserAccount.email)))
        docs_app = session.scalars(
            select(SmartApp).where(SmartApp.client_id == "puente-docs")
        ).one()
    assert {"clinician@hgcj", "patient@umcep", "consent-officer@hgcj", "admin@umcep"} <= emails
    assert len(emails) == 10
    assert docs_app.redirect_uris == ["http://127.0.0.1:8000/docs/oauth2-redirect"]


def test_printed_tokens_and_calls_work(client: TestClient) -> None:
    _loaded, printed = _run()
    tokens = dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.splitlines()
        if line.startswith("export ")
    )
    assert {"HGCJ", "UMCEP", "OFFICER", "ADMIN", "CLINICIAN"} <= set(tokens)
    assert printed.count("curl ") >= 3
    organizations = client.get(
        "/fhir/Organization", headers={"Authorization": f"Bearer {tokens['HGCJ']}"}
    )
    assert organizations.status_code == 200
    assert organizations.json()["total"] == 4
    patients = client.get(
        "/fhir/Patient",
        params={"_summary": "count"},
        headers={"Authorization": f"Bearer {tokens['HGCJ']}"},
    )
    # the synthetic ones, the demo patient and the doubtful registrations for the MPI's queue
    assert patients.json()["total"] == 12 + 1 + len(scenario.DOUBTFUL)
    names = {e["resource"]["name"] for e in organizations.json()["entry"]}
    assert "Hospital General de Ciudad Juárez" in names
    audit = client.get("/fhir/AuditEvent", headers={"Authorization": f"Bearer {tokens['OFFICER']}"})
    assert audit.status_code == 200
    assert audit.json()["total"] >= 1
    labelled = client.get(
        "/fhir/Condition/umcep-demo-condition-psy",
        headers={"Authorization": f"Bearer {tokens['UMCEP']}"},
    ).json()
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"} in [
        {"system": c["system"], "code": c["code"]} for c in labelled["meta"]["security"]
    ]
    consents = client.get(
        "/fhir/Consent",
        params={
            "patient": "Patient/hgcj-demo-patient",
            "status": "active",
            "actor": "Organization/us",
        },
        headers={"Authorization": f"Bearer {tokens['OFFICER']}"},
    ).json()
    assert [e["resource"]["id"] for e in consents["entry"]] == ["hgcj-demo-consent"]
    assert "/fhir/Consent/hgcj-demo-consent" in printed


def test_demo_people_sign_in_with_the_printed_password(client: TestClient) -> None:
    _run()
    from puente.auth import service

    with session_factory()() as session:
        account = service.sign_in(
            session, email="clinician@umcep", password=scenario.DEMO_PASSWORD, source_ip="127.0.0.1"
        )
        assert account.subject == "Practitioner/umcep-demo-clinician"
        session.commit()


def test_a_break_the_glass_episode_waits_for_review(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUENTE_MAIL_DIR", str(tmp_path / "mail"))
    get_settings.cache_clear()
    _loaded, printed = _run()
    tokens = dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.splitlines()
        if line.startswith("export ")
    )
    assert "1 emergency access waiting for a consent officer's review" in printed
    assert "/btg/reviews" in printed
    assert "$break-the-glass" in printed
    # HGCJ's officer sees it: the El Paso clinician's grant opened the Juárez record
    queue = client.get("/btg/reviews", headers={"Authorization": f"Bearer {tokens['OFFICER']}"})
    assert queue.status_code == 200
    (episode,) = queue.json()["items"]
    assert episode["status"] == "open"
    assert episode["patient"] == "Patient/umcep-demo-patient"
    assert episode["linked"] == ["Patient/hgcj-demo-patient"]
    assert episode["clinician_fhir_user"] == "Practitioner/umcep-demo-clinician"
    # the printed $CLINICIAN token holds the grant
    from consent.breakglass import active_grants
    from puente.auth import tokens as token_module
    from puente.db import utcnow

    clinician = token_module.read(get_settings(), tokens["CLINICIAN"])
    with session_factory()() as session:
        (grant,) = active_grants(session, clinician, now=utcnow())
    assert grant.patient == "umcep-demo-patient"
    # the notice, in Spanish, for José's address in Juárez (the recording channel's file)
    (notice,) = (tmp_path / "mail").glob("*.eml")
    text = notice.read_text()
    assert "To: jose.ramirez@example.org" in text
    assert "Content-Language: es-MX" in text
    # the printed call breaks the glass again
    again = client.post(
        "/fhir/Patient/umcep-demo-patient/$break-the-glass",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Unconscious in the ER, no history"}],
        },
        headers={
            "Authorization": f"Bearer {tokens['CLINICIAN']}",
            "Content-Type": "application/fhir+json",
        },
    )
    assert again.status_code == 201, again.text


def test_everything_on_the_consenting_juarez_patient_as_the_us_clinician(
    client: TestClient,
) -> None:
    _loaded, printed = _run()
    tokens = dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.splitlines()
        if line.startswith("export ")
    )
    assert "/fhir/Patient/hgcj-demo-patient/\\$everything" in printed
    bundle = client.get(
        "/fhir/Patient/hgcj-demo-patient/$everything",
        headers={"Authorization": f"Bearer {tokens['CLINICIAN']}"},
    ).json()
    sources = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]["meta"]["source"]
        for e in bundle["entry"]
        if e["search"]["mode"] == "match"
    }
    juarez = {f"{r['resourceType']}/{r['id']}" for r in scenario.JUAREZ_VISIT}
    assert juarez | {"Patient/hgcj-demo-patient", "Patient/umcep-demo-patient"} <= set(sources)
    assert {sources[r] for r in juarez} == {"urn:puente:source:mx:hgcj"}
    assert sources["Condition/umcep-demo-condition-psy"] == "urn:puente:source:us:umcep"
    assert bundle["total"] == len(sources)
