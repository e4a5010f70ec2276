"""Search parameters of the clinical types: tokens, references, dates, quantities, strings,
chains, and the 400s of malformed values."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.exchange.search_data import ICD10, LOINC, UCUM, ids, load
from tests.factories import bearer


def _get(client: TestClient, path: str, params: Any, **headers: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{path}", params=params, headers={**bearer(), **headers})
    assert response.status_code == 200, (params, response.text)
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("Observation", {"code": f"{LOINC}|2339-0"}, ["hgcj-obs-glucose"]),
        ("Observation", {"code": "4548-4"}, ["hgcj-obs-a1c", "hgcj-obs-maria"]),
        ("Observation", {"code": "|4548-4"}, []),
        (
            "Observation",
            {"code": f"{LOINC}|"},
            ["hgcj-obs-glucose", "hgcj-obs-a1c", "hgcj-obs-maria"],
        ),
        ("Observation", {"code:not": "4548-4"}, ["hgcj-obs-glucose"]),
        ("Observation", {"category": "laboratory", "patient": "hgcj-1002"}, ["hgcj-obs-maria"]),
        ("Condition", {"code": f"{ICD10}|E11.9"}, ["hgcj-cond-dm2"]),
        ("Condition", {"clinical-status": "active"}, ["hgcj-cond-dm2"]),
        ("Condition", {"code": "http://snomed.info/sct|E11.9"}, []),
        ("Encounter", {"class": "EMER", "patient": "Patient/hgcj-1001"}, ["hgcj-enc1"]),
        ("Encounter", {"participant": "Practitioner/hgcj-dr1"}, ["hgcj-enc1"]),
        ("Encounter", {"service-provider": "hgcj"}, ["hgcj-enc1"]),
        (
            "Observation",
            {"subject": "Patient/hgcj-1001", "encounter": "hgcj-enc1"},
            ["hgcj-obs-glucose"],
        ),
        ("Patient", {"general-practitioner": "Practitioner/hgcj-dr1"}, ["hgcj-1001"]),
        ("Patient", {"organization": "hgcj", "address-postalcode": "32000"}, ["hgcj-1001"]),
        ("Patient", {"address-state": "chihuahua"}, ["hgcj-1001"]),
        ("Provenance", {"target": "Patient/hgcj-1001"}, ["hgcj-prov1"]),
        ("Provenance", {"patient": "hgcj-1001", "recorded": "2024-03-15"}, ["hgcj-prov1"]),
    ],
)
def test_tokens_and_references(
    client: TestClient, path: str, params: dict[str, str], expected: list[str]
) -> None:
    load()
    assert sorted(ids(_get(client, path, params))) == sorted(expected)


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        # Condition.onsetDateTime is "2019": the whole year.
        ("Condition", {"onset-date": "2019"}, ["hgcj-cond-dm2"]),
        ("Condition", {"onset-date": "2019-06"}, []),  # the year is wider than June
        ("Condition", {"onset-date": "ap2019-06"}, ["hgcj-cond-dm2"]),
        ("Condition", {"onset-date": "ne2019"}, []),
        ("Condition", {"onset-date": "ge2019"}, ["hgcj-cond-dm2"]),
        ("Condition", {"onset-date": "gt2019"}, []),
        ("Condition", {"onset-date": "lt2020", "recorded-date": "2024-03-15"}, ["hgcj-cond-dm2"]),
        # Encounter.period 2024-03-15 14:00-18:00 UTC.
        ("Encounter", {"date": "2024-03-15"}, ["hgcj-enc1"]),
        ("Encounter", {"date": "2024-03-15T15:00:00Z"}, []),  # a point does not hold a period
        ("Encounter", {"date": "sa2024-03-14"}, ["hgcj-enc1"]),
        ("Encounter", {"date": "sa2024-03-15T15:00:00Z"}, []),
        ("Encounter", {"date": "eb2024-03-16"}, ["hgcj-enc1"]),
        ("Encounter", {"date": "le2024-03-15T13:00:00Z"}, []),
        ("Encounter", {"date": "gt2024-03-15T15:00:00Z"}, ["hgcj-enc1"]),
        # effectiveDateTime (with an offset), effectivePeriod, and a year.
        ("Observation", {"date": "2024-03-15T16:30:00Z"}, ["hgcj-obs-glucose"]),
        ("Observation", {"date": "2024-05"}, ["hgcj-obs-a1c"]),
        ("Observation", {"date": "lt2024"}, ["hgcj-obs-maria"]),
        (
            "Observation",
            {"date": "ge2024-03", "patient": "hgcj-1001"},
            ["hgcj-obs-glucose", "hgcj-obs-a1c"],
        ),
        ("Patient", {"birthdate": "ge1989"}, ["hgcj-1002"]),
        ("Patient", {"birthdate": "1985-04-12"}, ["hgcj-1001"]),
    ],
)
def test_date_prefixes_on_partial_dates_and_periods(
    client: TestClient, path: str, params: dict[str, str], expected: list[str]
) -> None:
    load()
    assert sorted(ids(_get(client, path, params))) == sorted(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("98", ["hgcj-obs-glucose"]),
        ("98.4", []),  # [98.35, 98.45)
        ("9.8e1", ["hgcj-obs-glucose"]),
        (f"98|{UCUM}|mg/dL", ["hgcj-obs-glucose"]),
        ("98||mg/dL", ["hgcj-obs-glucose"]),
        (f"98|{UCUM}|mmol/L", []),
        ("5.4", ["hgcj-obs-a1c"]),  # 5.44 is within [5.35, 5.45); 5.46 is not
        ("5.46", ["hgcj-obs-maria"]),
        ("gt5.44", ["hgcj-obs-glucose", "hgcj-obs-maria"]),
        ("ge5.44||%", ["hgcj-obs-a1c", "hgcj-obs-maria"]),
        ("lt6", ["hgcj-obs-a1c", "hgcj-obs-maria"]),
        ("le5.44", ["hgcj-obs-a1c"]),
        ("ne98", ["hgcj-obs-a1c", "hgcj-obs-maria"]),
        ("ap100", ["hgcj-obs-glucose"]),
        ("ap50", []),
    ],
)
def test_quantity_prefixes_and_precision(
    client: TestClient, value: str, expected: list[str]
) -> None:
    load()
    found = _get(client, "Observation", {"value-quantity": value})
    assert sorted(ids(found)) == sorted(expected)


def test_strings_exact_contains_and_missing(client: TestClient) -> None:
    load()
    assert ids(_get(client, "Practitioner", {"name": "hernandez"})) == ["hgcj-dr1"]
    assert ids(_get(client, "Practitioner", {"name:contains": "UCI"})) == ["hgcj-dr1"]
    assert ids(_get(client, "Practitioner", {"family:exact": "hernández"})) == []
    assert ids(_get(client, "Practitioner", {"family:exact": "Hernández"})) == ["hgcj-dr1"]
    assert ids(_get(client, "Patient", {"gender:missing": "true"})) == ["hgcj-1001"]
    assert ids(_get(client, "Patient", {"gender:missing": "false"})) == ["hgcj-1002"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"patient.name": "jose"}, ["hgcj-obs-glucose", "hgcj-obs-a1c"]),
        ({"subject:Patient.name": "JOSÉ"}, ["hgcj-obs-glucose", "hgcj-obs-a1c"]),
        (
            {"subject.identifier": "https://www.gob.mx/curp|RAAJ850412HCHMNS05"},
            ["hgcj-obs-glucose", "hgcj-obs-a1c"],
        ),
        ({"patient.birthdate": "1990"}, ["hgcj-obs-maria"]),
        ({"patient.name": "nadie"}, []),
        ({"encounter.class": "EMER"}, ["hgcj-obs-glucose"]),
    ],
)
def test_chaining_one_level(
    client: TestClient, params: dict[str, str], expected: list[str]
) -> None:
    load()
    assert sorted(ids(_get(client, "Observation", params))) == sorted(expected)


def test_chain_never_reaches_a_resource_the_caller_cannot_see(client: TestClient) -> None:
    # hgcj's observation points at the other hospital's José; he is invisible to hgcj.
    crossing = {
        "resourceType": "Observation",
        "id": "hgcj-obs-cross",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "2339-0"}]},
        "subject": {"reference": "Patient/umcep-2001"},
    }
    load(crossing)
    found = _get(client, "Observation", {"patient.name": "ramirez", "code": "2339-0"})
    assert ids(found) == ["hgcj-obs-glucose"]
    plain = _get(client, "Observation", {"patient": "umcep-2001"})
    assert ids(plain) == ["hgcj-obs-cross"]  # the reference itself is hgcj's own data


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("Observation", {"date": "2024-13-45"}),
        ("Observation", {"date": "marzo"}),
        ("Encounter", {"date": "xx2024"}),
        ("Observation", {"code": "|"}),
        ("Observation", {"code": ""}),
        ("Observation", {"value-quantity": "mucho"}),
        ("Observation", {"value-quantity": "5.4|mg"}),
        ("Observation", {"value-quantity": "gtNaN"}),
        ("Observation", {"subject": "Organization/hgcj"}),
        ("Observation", {"patient.colour": "red"}),
        ("Observation", {"patient.name.family": "x"}),
        ("Observation", {"subject:Practitioner.name": "x"}),
        ("Condition", {"colour": "red"}),
        ("Condition", {"code:below": "E11"}),
        ("Observation", {"_total": "some"}),
        ("Observation", {"_page_token": "!!not-a-token"}),
    ],
)
def test_malformed_values_are_400(client: TestClient, path: str, params: dict[str, str]) -> None:
    load()
    response = client.get(f"/fhir/{path}", params=params, headers=bearer())
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_parameter_on_a_clinical_type_is_ignored_when_lenient(client: TestClient) -> None:
    load()
    body = _get(
        client,
        "Condition",
        {"colour": "red", "code": "E11.9"},
        Prefer="handling=lenient",
    )
    assert ids(body) == ["hgcj-cond-dm2"]
    modes = [e["search"]["mode"] for e in body["entry"]]
    assert modes == ["match", "outcome"]
    assert "colour" not in body["link"][0]["url"]


def test_another_system_finds_none_of_it(client: TestClient) -> None:
    load()
    other = bearer("system", "umcep")
    response = client.get("/fhir/Observation", params={"code": "4548-4"}, headers=other)
    assert response.json()["total"] == 0


def test_chain_into_directory_data(client: TestClient) -> None:
    load()
    found = _get(client, "Encounter", {"service-provider.name": "hospital general"})
    assert ids(found) == ["hgcj-enc1"]
    assert ids(_get(client, "Encounter", {"service-provider.name": "university"})) == []
    assert ids(_get(client, "Patient", {"general-practitioner:Practitioner.family": "hernan"})) == [
        "hgcj-1001"
    ]
