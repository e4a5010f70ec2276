"""Security labelling on ingest: per code system lists, resource coverage, Part 2 flag."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.codes import (
    ACT_CODE,
    CONFIDENTIALITY,
    ICD10,
    ICD10_CM,
    LOINC,
    NO_REDISCLOSURE,
    PART2,
    Label,
)
from consent.labels import LISTS, compile_lists, labels_for, lists_version, shipped_lists

SNOMED = "http://snomed.info/sct"

CODES = [
    # ICD-10-CM (US).
    (ICD10_CM, "F11.20", {"ETH"}),  # opioid dependence
    (ICD10_CM, "F10.10", {"ETH"}),
    (ICD10_CM, "F19.99", {"ETH"}),
    (ICD10_CM, "F17.210", set()),  # nicotine dependence: F17 is carved out
    (ICD10_CM, "O99.310", {"ETH"}),
    (ICD10_CM, "O99.323", {"ETH"}),
    (ICD10_CM, "O99.330", set()),  # tobacco use in pregnancy
    (ICD10_CM, "B20", {"HIV"}),
    (ICD10_CM, "Z21", {"HIV"}),
    (ICD10_CM, "R75", {"HIV"}),
    (ICD10_CM, "O98.711", {"HIV"}),
    (ICD10_CM, "Z20.6", {"HIV"}),
    (ICD10_CM, "Z71.7", {"HIV"}),
    (ICD10_CM, "B23.0", set()),  # not an ICD-10-CM HIV code (WHO only)
    (ICD10_CM, "F32.9", {"PSY"}),
    (ICD10_CM, "F69", {"PSY"}),
    (ICD10_CM, "F70", set()),  # intellectual disabilities are not in the list
    (ICD10_CM, "F90.0", {"PSY"}),
    (ICD10_CM, "T74.11XA", {"SDV"}),
    (ICD10_CM, "T76.21XA", {"SDV"}),
    (ICD10_CM, "Y07.01", {"SDV"}),
    (ICD10_CM, "O03.9", {"SEX"}),
    (ICD10_CM, "O08.0", {"SEX"}),
    (ICD10_CM, "O09.90", set()),  # supervision of a pregnancy
    (ICD10_CM, "Z33.2", {"SEX"}),
    (ICD10_CM, "E11.9", set()),
    (ICD10_CM, " f11.20 ", {"ETH"}),  # as some senders write it
    # WHO ICD-10 / CIE-10 (Mexico): different lists.
    (ICD10, "F11.2", {"ETH"}),
    (ICD10, "F17.2", set()),
    (ICD10, "B23.0", {"HIV"}),
    (ICD10, "B24", {"HIV"}),
    (ICD10, "Z21", {"HIV"}),
    (ICD10, "F20.0", {"PSY"}),
    (ICD10, "T74.1", {"SDV"}),
    (ICD10, "T76", set()),  # ICD-10-CM only
    (ICD10, "Y07", set()),
    (ICD10, "Z20.6", set()),
    (ICD10, "O99.3", set()),
    (ICD10, "O06.9", {"SEX"}),
    # LOINC: exact codes only.
    (LOINC, "20447-9", {"HIV"}),
    (LOINC, "56888-1", {"HIV"}),
    (LOINC, "2345-7", set()),  # glucose
    # A code system without lists labels nothing, even with an ICD-looking code.
    (SNOMED, "F11", set()),
]


@pytest.mark.parametrize(("system", "code", "labels"), CODES, ids=[f"{c[0]}|{c[1]}" for c in CODES])
def test_code_lists_per_code_system(system: str, code: str, labels: set[str]) -> None:
    assert {label.code for label in shipped_lists().labels_of(system, code)} == labels


def _cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _codes(resource: dict[str, Any], *, part2_program: bool = False) -> set[str]:
    return {label.code for label in labels_for(resource, part2_program=part2_program)}


RESOURCES = [
    ("Condition code", {"resourceType": "Condition", "code": _cc(ICD10_CM, "F20.9")}, {"PSY"}),
    (
        "Observation value",
        {
            "resourceType": "Observation",
            "code": _cc(LOINC, "11450-4"),
            "valueCodeableConcept": _cc(ICD10, "B20"),
        },
        {"HIV"},
    ),
    ("Observation code", {"resourceType": "Observation", "code": _cc(LOINC, "20447-9")}, {"HIV"}),
    (
        "Observation component",
        {"resourceType": "Observation", "component": [{"code": _cc(LOINC, "7917-8")}]},
        {"HIV"},
    ),
    (
        "MedicationRequest reason",
        {"resourceType": "MedicationRequest", "reasonCode": [_cc(ICD10_CM, "F11.20")]},
        {"ETH"},
    ),
    (
        "MedicationStatement reason",
        {"resourceType": "MedicationStatement", "reasonCode": [_cc(ICD10, "F10.2")]},
        {"ETH"},
    ),
    ("Procedure code", {"resourceType": "Procedure", "code": _cc(ICD10_CM, "O04.5")}, {"SEX"}),
    (
        "Procedure reason",
        {
            "resourceType": "Procedure",
            "code": _cc(SNOMED, "1"),
            "reasonCode": [_cc(ICD10, "T74.0")],
        },
        {"SDV"},
    ),
    (
        "Encounter reason",
        {"resourceType": "Encounter", "reasonCode": [_cc(ICD10_CM, "F32.9")]},
        {"PSY"},
    ),
    (
        "Encounter diagnosis (contained Condition)",
        {
            "resourceType": "Encounter",
            "contained": [{"resourceType": "Condition", "id": "d1", "code": _cc(ICD10, "F11.2")}],
            "diagnosis": [{"condition": {"reference": "#d1"}}],
        },
        {"ETH"},
    ),
    (
        "DocumentReference event",
        {"resourceType": "DocumentReference", "context": {"event": [_cc(ICD10_CM, "T74.21XA")]}},
        {"SDV"},
    ),
    (
        "DocumentReference securityLabel kept",
        {"resourceType": "DocumentReference", "securityLabel": [_cc(ACT_CODE, "HIV")]},
        {"HIV"},
    ),
    ("Patient: nothing coded", {"resourceType": "Patient", "id": "p"}, set()),
    (
        "several codes, several labels",
        {
            "resourceType": "Encounter",
            "reasonCode": [_cc(ICD10_CM, "F11.20"), _cc(ICD10_CM, "B20"), _cc(ICD10_CM, "E11.9")],
        },
        {"ETH", "HIV"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("resource", "labels"), [pytest.param(*r[1:], id=r[0]) for r in RESOURCES])
def test_labels_by_resource_type(resource: dict[str, Any], labels: set[str]) -> None:
    assert _codes(resource) == labels


def test_the_senders_labels_are_kept() -> None:
    resource = {
        "resourceType": "Condition",
        "meta": {
            "security": [
                {"system": CONFIDENTIALITY, "code": "R"},
                {"system": "urn:hospital:labels", "code": "vip"},
            ]
        },
        "code": _cc(ICD10_CM, "F20.9"),
    }
    assert labels_for(resource, part2_program=False) == {
        Label(CONFIDENTIALITY, "R"),
        Label("urn:hospital:labels", "vip"),
        Label(ACT_CODE, "PSY"),
    }


def test_part2_comes_from_the_program_never_from_a_diagnosis() -> None:
    opioids = {"resourceType": "Condition", "code": _cc(ICD10_CM, "F11.20")}
    glucose = {"resourceType": "Observation", "code": _cc(LOINC, "2345-7")}
    # A general ER's opioid dependence diagnosis: sensitive, not Part 2.
    assert _codes(opioids) == {"ETH"}
    # Anything from a Part 2 program, even a glucose level, is Part 2.
    assert _codes(glucose, part2_program=True) == {"42CFRPart2", "NORDSCLCD"}
    assert _codes(opioids, part2_program=True) == {"ETH", "42CFRPart2", "NORDSCLCD"}


def test_a_change_of_the_lists_changes_their_version() -> None:
    text = LISTS.read_text(encoding="utf-8")
    assert lists_version() == compile_lists(text).version
    assert len(lists_version()) == 16
    changed = text + "http://hl7.org/fhir/sid/icd-10,Z20.6,,prefix,HIV,include,added\n"
    assert compile_lists(changed).version != lists_version()
    assert {label.code for label in compile_lists(changed).labels_of(ICD10, "Z20.6")} == {"HIV"}


def test_lists_reject_a_malformed_row() -> None:
    header = "system,from,to,match,label,effect,note\n"
    with pytest.raises(ValueError, match="range"):
        compile_lists(header + f"{ICD10},F19,F10,prefix,ETH,include,\n")
    with pytest.raises(ValueError, match="match"):
        compile_lists(header + f"{ICD10},F19,,regex,ETH,include,\n")
    with pytest.raises(ValueError, match="effect"):
        compile_lists(header + f"{ICD10},F19,,prefix,ETH,maybe,\n")


ANY_CODE = st.sampled_from(
    [code for _system, code, _labels in CODES] + ["F11.2", "F17", "O99.31", "B24.0", "Z71.7"]
)
ANY_SYSTEM = st.sampled_from([ICD10, ICD10_CM, LOINC, SNOMED])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(ANY_SYSTEM, ANY_CODE), max_size=4),
    st.sampled_from(["Condition", "Encounter", "Procedure", "MedicationRequest"]),
    st.booleans(),
)
def test_part2_follows_the_program_flag_whatever_the_codes(
    codings: list[tuple[str, str]], resource_type: str, part2_program: bool
) -> None:
    concepts = [_cc(system, code) for system, code in codings]
    resource: dict[str, Any] = {"resourceType": resource_type, "reasonCode": concepts}
    if concepts:
        resource["code"] = concepts[0]
    labels = labels_for(resource, part2_program=part2_program)
    assert (PART2 in labels) is part2_program
    assert (NO_REDISCLOSURE in labels) is part2_program
    # Only sensitivity codes come from the lists, all in v3-ActCode.
    assert {label.system for label in labels} <= {ACT_CODE}
