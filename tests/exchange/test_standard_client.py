"""An unmodified standard FHIR client (fhirpy) against a running Puente, over real HTTP:
create, read, update, search with paging and _include, and a transaction."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from fhirpy import SyncFHIRClient
from sqlalchemy.orm import Session

from puente.auth import tokens
from puente.auth.scopes import Role, grant
from puente.db import engine_for
from puente.migrate import upgrade
from puente.settings import Settings, get_settings
from tests.factories import organizations
from tests.live import free_port, puente_command, server_env, wait_until_up


@pytest.fixture(scope="module")
def fhir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncFHIRClient]:
    folder = tmp_path_factory.mktemp("standard-client")
    url = f"sqlite:///{folder / 'puente.db'}"
    upgrade(url)
    engine = engine_for(url)
    with Session(engine) as session:
        organizations(session)
        session.commit()
    engine.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*puente_command(), "serve", "--port", str(port)],
            env=server_env(url, base_url=base),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(process, base, log)
        # The server's own settings: its base URL is the tokens' audience.
        settings = Settings(base_url=base, secret_key=get_settings().secret_key)
        issued = tokens.issue(
            settings,
            subject="hgcj-client",
            role=Role.SYSTEM,
            scopes=grant(Role.SYSTEM, None),
            org_code="hgcj",
            country="MX",
        )
        yield SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {issued.access_token}")
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_create_read_update(fhir: SyncFHIRClient) -> None:
    patient = fhir.resource(
        "Patient",
        name=[{"family": "Hernández López", "given": ["María", "Guadalupe"]}],
        birthDate="1990-03-04",
        gender="female",
    )
    patient.save()
    assert patient.id
    assert patient["meta"]["versionId"] == "1"
    read = fhir.reference("Patient", patient.id).to_resource()
    assert read["name"][0]["family"] == "Hernández López"
    read["gender"] = "other"
    read.save()
    again = fhir.reference("Patient", patient.id).to_resource()
    assert again["gender"] == "other"
    assert again["meta"]["versionId"] == "2"


def test_search_with_paging_and_include(fhir: SyncFHIRClient) -> None:
    patient = fhir.resource("Patient", name=[{"family": "Anchondo", "given": ["Lupe"]}])
    patient.save()
    for n in range(7):
        fhir.resource(
            "Encounter",
            status="finished",
            **{
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "EMER",
                }
            },
            subject=patient.to_reference(),
            identifier=[{"system": "urn:test:visit", "value": f"v{n}"}],
        ).save()
    search = fhir.resources("Encounter").search(subject=f"Patient/{patient.id}").limit(3)
    fetched = list(search)  # fhirpy follows the `next` links page by page
    assert len(fetched) == 7
    assert len({e.id for e in fetched}) == 7
    assert search.count() == 7
    bundle = (
        fhir.resources("Encounter")
        .search(subject=f"Patient/{patient.id}")
        .include("Encounter", "subject")
        .limit(10)
        .fetch_raw()
    )
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in included] == [patient.id]
    accented = fhir.resources("Patient").search(name="anchondo").fetch_all()
    assert [p.id for p in accented] == [patient.id]


def test_transaction(fhir: SyncFHIRClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b9d3a4e-1111-4a5b-8c6d-000000000001",
                "resource": {"resourceType": "Patient", "name": [{"family": "Chávez"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                    "subject": {"reference": "urn:uuid:0b9d3a4e-1111-4a5b-8c6d-000000000001"},
                    "valueQuantity": {
                        "value": 7.2,
                        "unit": "%",
                        "system": "http://unitsofmeasure.org",
                        "code": "%",
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    result = fhir.execute("", method="post", data=bundle)
    assert result["type"] == "transaction-response"
    patient_id = result["entry"][0]["resource"]["id"]
    observation = fhir.reference("Observation", result["entry"][1]["resource"]["id"]).to_resource()
    assert observation["subject"]["reference"] == f"Patient/{patient_id}"
    high = fhir.resources("Observation").search(**{"value-quantity": "gt7"}).fetch_all()
    assert [o.id for o in high] == [observation.id]
