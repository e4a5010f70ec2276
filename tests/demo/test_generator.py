"""The synthetic scenario: realistic, valid FHIR R4, reproducible, within the demo's size."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

import pytest
from stdnum.mx import curp

from demo.generator import CURP_SYSTEM, FATHERS, MOTHERS, Scenario, generate
from exchange.validation import validate


@pytest.fixture(scope="module")
def small() -> Scenario:
    return generate(patients_per_hospital=80, seed=11)


def _patients(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records if r["resourceType"] == "Patient"}


def test_same_seed_same_scenario() -> None:
    first = generate(patients_per_hospital=20, seed=3)
    assert first.records == generate(patients_per_hospital=20, seed=3).records
    assert first.records != generate(patients_per_hospital=20, seed=4).records


def test_default_size_fits_the_demo_budget() -> None:
    scenario = generate()
    assert 2000 < scenario.count() <= 15_000
    assert len(_patients(scenario.records["hgcj"])) == 1000
    assert len(_patients(scenario.records["umcep"])) == 1000
    assert 150 <= len(scenario.shared) <= 350  # about a quarter on both sides


def test_every_resource_is_valid_r4(small: Scenario) -> None:
    for records in small.records.values():
        for resource in records:
            validate(resource)


def test_ids_live_in_the_writers_namespace_and_references_resolve(small: Scenario) -> None:
    for system, records in small.records.items():
        ids = {f"{r['resourceType']}/{r['id']}" for r in records}
        seen: set[str] = set()
        for resource in records:
            assert resource["id"].startswith(f"{system}-")
            for key in ("subject", "patient"):
                if key in resource:
                    # reference order: a patient is written before its records
                    assert resource[key]["reference"] in seen
            if "serviceProvider" in resource:
                assert resource["serviceProvider"]["reference"] == f"Organization/{system}"
            seen.add(f"{resource['resourceType']}/{resource['id']}")
        assert seen == ids


def test_mexican_records_carry_two_surnames_and_a_valid_curp(small: Scenario) -> None:
    for patient in _patients(small.records["hgcj"]).values():
        name = patient["name"][0]
        parts = {e["url"]: e["valueString"] for e in name["_family"]["extension"]}
        assert name["family"] == f"{parts[FATHERS]} {parts[MOTHERS]}"
        number = next(i["value"] for i in patient["identifier"] if i["system"] == CURP_SYSTEM)
        assert curp.is_valid(number)
        assert curp.get_birth_date(number) == dt.date.fromisoformat(patient["birthDate"])
        assert number[10] == ("H" if patient["gender"] == "male" else "M")


def _has_accent(text: str) -> bool:
    return unicodedata.normalize("NFKD", text) != text


def test_shared_people_look_like_el_paso_registered_them(small: Scenario) -> None:
    mx = _patients(small.records["hgcj"])
    us = _patients(small.records["umcep"])
    assert small.shared
    for mx_id, us_id in small.shared:
        mexican, american = mx[mx_id], us[us_id]
        assert mexican["gender"] == american["gender"]
        born_mx = dt.date.fromisoformat(mexican["birthDate"])
        born_us = dt.date.fromisoformat(american["birthDate"])
        swapped = (
            born_mx.replace(month=born_mx.day, day=born_mx.month) if born_mx.day <= 12 else born_mx
        )
        assert born_us in (born_mx, swapped)
        us_name = american["name"][0]
        assert not _has_accent(us_name["family"] + " ".join(us_name["given"]))
        assert not any(i["system"] == CURP_SYSTEM for i in american["identifier"])
    accented = [p for p in mx.values() if _has_accent(p["name"][0]["family"])]
    assert accented, "Mexican records keep their accents"


def test_codes_follow_each_side(small: Scenario) -> None:
    def systems(system: str, resource_type: str, element: str) -> set[str]:
        return {
            c["system"]
            for r in small.records[system]
            if r["resourceType"] == resource_type
            for c in r[element]["coding"]
        }

    assert systems("hgcj", "Condition", "code") == {"http://hl7.org/fhir/sid/icd-10"}
    assert systems("umcep", "Condition", "code") == {"http://hl7.org/fhir/sid/icd-10-cm"}
    assert systems("umcep", "Immunization", "vaccineCode") == {"http://hl7.org/fhir/sid/cvx"}
    encounters = [r for r in small.records["hgcj"] if r["resourceType"] == "Encounter"]
    assert {e["class"]["code"] for e in encounters} == {"EMER", "AMB"}
    summer = [e for e in encounters if e["period"]["start"][5:7] in ("07", "08")]
    assert all(e["period"]["start"].endswith("-06:00") for e in summer)  # MDT in Juárez
