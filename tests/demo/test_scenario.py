"""The demo scenario loads once through the public services and tells a newcomer how to call."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _tokens_of(printed: str) -> dict[str, str]:
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.splitlines()
        if line.startswith("export ")
    )


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
    tokens = _tokens_of(printed)
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
    # the synthetic ones, the demo patient, Ana and the doubtful registrations for the
    # MPI's queue
    assert patients.json()["total"] == 12 + 1 + 1 + len(scenario.DOUBTFUL)
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
    tokens = _tokens_of(printed)
    assert "1 emergency access waiting for a consent officer's review" in printed
    assert "/btg/reviews" in printed
    assert "$break-the-glass" in printed
    # HGCJ's officer sees it: the El Paso clinician's grant opened the Juárez record
    queue = client.get("/btg/reviews", headers={"Authorization": f"Bearer {tokens['OFFICER']}"})
    assert queue.status_code == 200
    (episode,) = queue.json()["items"]
    assert episode["status"] == "open"
    assert episode["patient"] == "Patient/umcep-demo-ana"
    assert episode["linked"] == ["Patient/hgcj-demo-ana"]
    assert episode["clinician_fhir_user"] == "Practitioner/umcep-demo-er-clinician"
    # the ER physician's grant, not the printed $CLINICIAN token's: the walkthrough's
    # answers stay the same when it lapses
    from consent.breakglass import active_grants
    from puente.auth import tokens as token_module
    from puente.db import utcnow

    clinician = token_module.read(get_settings(), tokens["CLINICIAN"])
    with session_factory()() as session:
        assert not active_grants(session, clinician, now=utcnow())
    # the notice, in Spanish, for Ana's address in Juárez (the recording channel's file)
    (notice,) = (tmp_path / "mail").glob("*.eml")
    text = notice.read_text()
    assert "To: ana.gutierrez@example.org" in text
    assert "Content-Language: es-MX" in text
    # the printed call breaks the glass for Ana's El Paso record: her Juárez asthma opens
    asthma = "/fhir/Condition/hgcj-demo-ana-asthma"
    doctor = {"Authorization": f"Bearer {tokens['CLINICIAN']}"}
    assert client.get(asthma, headers=doctor).status_code == 404
    assert "/fhir/Patient/umcep-demo-ana/\\$break-the-glass" in printed
    again = client.post(
        "/fhir/Patient/umcep-demo-ana/$break-the-glass",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Unconscious in the ER, no history"}],
        },
        headers={**doctor, "Content-Type": "application/fhir+json"},
    )
    assert again.status_code == 201, again.text
    opened = client.get(asthma, headers=doctor)
    assert opened.status_code == 200, opened.text
    (notice_code,) = [e["extension"][0]["valueCode"] for e in opened.json()["meta"]["extension"]]
    assert notice_code == "break-the-glass-notice"


def _codes(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return sorted(
        e["resource"]["id"] for e in bundle.get("entry", ()) if e["search"]["mode"] == mode
    )


def test_the_walkthrough_across_the_border(client: TestClient) -> None:
    """README "Across the border": a US clinician pulls a consenting Juárez patient's
    chart and a non-consenting one's; a Juárez clinician reads a Part 2 record."""
    _loaded, printed = _run()
    tokens = _tokens_of(printed)
    doctor = {"Authorization": f"Bearer {tokens['CLINICIAN']}"}
    jose = client.get(
        "/fhir/Patient",
        params=[
            ("_id", "hgcj-demo-patient"),
            ("_revinclude", "Condition:patient"),
            ("_revinclude", "Observation:patient"),
        ],
        headers=doctor,
    )
    assert jose.status_code == 200, jose.text
    # the diabetes and its lab cross; the anxiety diagnosis (PSY, not permitted by the
    # Consent) does not
    assert _codes(jose.json()) == ["hgcj-demo-patient"]
    included = _codes(jose.json(), "include")
    assert {"hgcj-demo-condition-dm", "hgcj-demo-observation-hba1c"} <= set(included)
    assert "hgcj-demo-condition-anxiety" not in included
    assert (
        client.get("/fhir/Condition/hgcj-demo-condition-anxiety", headers=doctor).status_code == 404
    )
    # Ana gave no Consent: 404 as if she did not exist, and a search says only that
    # records are withheld that breaking the glass would open
    missing = client.get("/fhir/Patient/hgcj-demo-ana", headers=doctor)
    unknown = client.get("/fhir/Patient/hgcj-nobody", headers=doctor)
    assert missing.status_code == unknown.status_code == 404
    ana = client.get("/fhir/Condition", params={"patient": "hgcj-demo-ana"}, headers=doctor).json()
    assert ana["total"] == 0
    (outcome,) = [e for e in ana["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome["resource"]["issue"][0]["code"] == "suppressed"
    # El Paso's Part 2 record, as Juárez's clinician, in Spanish, with the 2.32 notice
    part2 = client.get(
        "/fhir/Condition/umcep-demo-condition-oud",
        headers={"Authorization": f"Bearer {tokens['MX_CLINICIAN']}", "Accept-Language": "es"},
    )
    assert part2.status_code == 200, part2.text
    labels = {c["code"] for c in part2.json()["meta"]["security"]}
    assert {"42CFRPart2", "NORDSCLCD", "ETH"} <= labels
    notices = [e["extension"][0]["valueCode"] for e in part2.json()["meta"]["extension"]]
    assert sorted(notices) == ["consent-summary", "redisclosure-notice"]
    # the same patient's depression diagnosis is not in his Consent: it stays in El Paso
    psy = client.get(
        "/fhir/Condition/umcep-demo-condition-psy",
        headers={"Authorization": f"Bearer {tokens['MX_CLINICIAN']}"},
    )
    assert psy.status_code == 404
    # José's chart crossing is on record (the operator reads the whole trail)
    disclosures = client.get(
        "/fhir/AuditEvent",
        params={"type": "disclosure", "entity": "Condition/hgcj-demo-condition-dm"},
        headers={"Authorization": f"Bearer {tokens['ADMIN']}"},
    )
    assert disclosures.status_code == 200, disclosures.text
    assert disclosures.json()["total"] >= 1
    for call in ("Patient?_id=hgcj-demo-patient&_revinclude", "Patient/hgcj-demo-ana"):
        assert call in printed


def test_the_demo_patient_reads_his_accounting_of_disclosures(client: TestClient) -> None:
    _loaded, printed = _run()
    tokens = _tokens_of(printed)
    assert "/fhir/Patient/hgcj-demo-patient/\\$disclosures" in printed
    response = client.get(
        "/fhir/Patient/hgcj-demo-patient/$disclosures",
        headers={"Authorization": f"Bearer {tokens['PATIENT']}", "Accept-Language": "es-MX"},
    )
    assert response.status_code == 200, response.text
    events = [e["resource"] for e in response.json()["entry"]]
    # Dr. Chávez's read and search under José's Consent, then the export of his linked El
    # Paso record's group (one row per file page), newest first
    *exported, searched, viewed = [e["text"]["div"] for e in events]
    assert "consultó" in viewed
    assert "buscó y recibió" in searched
    assert exported
    assert all("exportó" in text for text in exported)
    for event in events:
        assert "University Medical Center of El Paso (Estados Unidos)" in event["text"]["div"]
        assert event["agent"][0]["who"]["reference"] == "Practitioner/umcep-demo-clinician"
    download = client.get(
        "/fhir/Patient/hgcj-demo-patient/$disclosures",
        headers={"Authorization": f"Bearer {tokens['OFFICER']}", "Accept": "text/csv"},
    )
    assert download.status_code == 200
    assert len(download.text.strip().splitlines()) == 1 + len(events)  # a header, then each


def test_the_demo_exports_a_group_through_the_gate(client: TestClient) -> None:
    _loaded, printed = _run()
    tokens = _tokens_of(printed)
    assert "Bulk export" in printed
    assert "Patient-1.ndjson (2)" in printed  # José's El Paso and (linked) Juárez records
    status_line = next(line for line in printed.splitlines() if "$export-status/" in line)
    status_url = status_line.split()[-1].replace("\\$", "$")
    path = status_url.removeprefix("http://127.0.0.1:8000")
    headers = {"Authorization": f"Bearer {tokens['CLINICIAN']}"}
    manifest = client.get(path, headers=headers)
    assert manifest.status_code == 200, manifest.text
    patients = next(o for o in manifest.json()["output"] if o["type"] == "Patient")
    lines = client.get(patients["url"].removeprefix("http://127.0.0.1:8000"), headers=headers)
    assert sorted(line.split('"id":"')[1].split('"')[0] for line in lines.text.splitlines()) == [
        "hgcj-demo-patient",
        "umcep-demo-patient",
    ]
    # Someone else's token: as if the export did not exist.
    assert (
        client.get(path, headers={"Authorization": f"Bearer {tokens['UMCEP']}"}).status_code == 404
    )


def test_everything_on_the_consenting_juarez_patient_as_the_us_clinician(
    client: TestClient,
) -> None:
    _loaded, printed = _run()
    tokens = _tokens_of(printed)
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
