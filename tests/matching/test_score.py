"""The Fellegi-Sunter scorer: levels per field, name frequencies, guards, grades, explanation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from exchange.matching import model as matching_model
from exchange.matching.features import Features
from exchange.matching.model import Model
from exchange.matching.score import (
    CERTAIN,
    PROBABLE,
    Score,
    levels,
    prepare,
    score,
)
from tests.matching.people import person

MX_CURP = "HELJ850412HCHRPN01"  # Juan Hernández López, 12 April 1985, Chihuahua
MX_ROOT = "HELJ850412HRPN"


@pytest.fixture(scope="module")
def model() -> Model:
    return matching_model.default()


def level(a_kwargs: Mapping[str, Any], b_kwargs: Mapping[str, Any], field: str) -> str:
    a, b = person("hgcj-1", **a_kwargs), person("umcep-1", **b_kwargs)
    index = matching_model.FIELDS.index(field)
    spec = matching_model.SCHEMA[index]
    return spec.levels[levels(prepare(a), prepare(b))[index]].label


def weight_of(result: Score, field: str) -> float:
    return next(fw.weight for fw in result.explanation if fw.field == field)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (("JUAN",), ("JUAN",), "exact"),
        (("JOSE", "LUIS"), ("LUIS",), "exact"),  # José leads, Luis is the name used
        (("JOSE", "LUIS"), ("JOSE", "LUIS", "ALBERTO"), "contained"),
        (("MARIA", "GUADALUPE"), ("LUPE",), "nickname"),
        (("JUAN", "CARLOS"), ("JUAN", "CARLOZ"), "jaro-winkler >= 0.92"),
        (("CRISTIAN",), ("CRISTOBAL",), "jaro-winkler >= 0.80"),
        (("JORGE",), ("J",), "initial"),
        (("JUAN", "CARLOS"), ("JUAN", "PABLO"), "different"),
        (("JUAN",), (), "missing"),
    ],
)
def test_given_name_levels(a: tuple[str, ...], b: tuple[str, ...], expected: str) -> None:
    canon = {"GUADALUPE": ("GUADALUPE",), "LUPE": ("GUADALUPE",)}
    a_canon = tuple(c for w in a for c in canon.get(w, (w,)))
    b_canon = tuple(c for w in b for c in canon.get(w, (w,)))
    assert (
        level({"given": a, "canonical": a_canon}, {"given": b, "canonical": b_canon}, "given")
        == expected
    )


@pytest.mark.parametrize(
    ("b", "expected"),
    [
        ({"paternal": "HERNANDEZ", "maternal": "LOPEZ"}, "both agree"),
        ({"paternal": "LOPEZ", "maternal": "HERNANDEZ"}, "crossed"),
        # a US desk kept only the paternal surname: not a contradiction
        ({"paternal": "HERNANDEZ", "maternal": ""}, "one agrees, other unknown"),
        ({"paternal": "HERNANDEZ", "maternal": "RAMIREZ"}, "one agrees, other differs"),
        ({"paternal": "HERNANDEZ", "maternal": "LOOPEZ"}, "one agrees, other similar"),
        # hyphenated on the US side, parsed into both surnames
        (
            {"paternal": "HERNANDEZ-LOPEZ", "maternal": "", "surnames": ("HERNANDEZ", "LOPEZ")},
            "both agree",
        ),
        ({"paternal": "ERNANDES", "maternal": "", "phonetic": ("HERN", "")}, "phonetic"),
        (
            {"paternal": "HERNANDES", "maternal": "", "phonetic": ("XXXX", "")},
            "jaro-winkler >= 0.90",
        ),
        ({"paternal": "GARCIA", "maternal": "MORALES"}, "different"),
        ({"paternal": "", "maternal": ""}, "missing"),
    ],
)
def test_surname_levels(b: dict[str, object], expected: str) -> None:
    a = {"paternal": "HERNANDEZ", "maternal": "LOPEZ", "phonetic": ("HERN", "LP")}
    b.setdefault("phonetic", (str(b["paternal"])[:4], str(b["maternal"])[:4]))
    assert level(a, b, "surnames") == expected


@pytest.mark.parametrize(
    ("born", "expected"),
    [
        ("1985-04-12", "exact"),
        ("1985-12-04", "day-month swapped"),
        ("1986-04-12", "year off by one"),
        ("1985-04-21", "one component differs"),
        ("1960-01-30", "different"),
        (None, "missing"),
    ],
)
def test_birth_date_levels(born: str | None, expected: str) -> None:
    assert level({}, {"born": born}, "birth_date") == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"curp": MX_CURP}, {"curp": MX_CURP}, "equal"),
        ({"curp": MX_CURP}, {"curp": "HELJ850412HCHRPN09"}, "contradicts"),
        ({"curp": MX_CURP}, {"roots": (MX_ROOT,)}, "root agrees"),
        # no maternal surname on the US record: X in the root is unknown, not a mismatch
        ({"curp": MX_CURP}, {"roots": ("HEXJ850412HRXN",)}, "root agrees"),
        ({"curp": MX_CURP}, {"roots": ("HELJ850412MRPN",)}, "root differs"),
        # neither has a CURP: derived roots would count the names twice
        ({"roots": (MX_ROOT,)}, {"roots": (MX_ROOT,)}, "missing"),
    ],
)
def test_curp_levels(a: dict[str, object], b: dict[str, object], expected: str) -> None:
    assert level(a, b, "curp") == expected


def test_identifier_phone_sex_and_address_levels() -> None:
    assert level({"ssn": "123456789"}, {"ssn": "123456789"}, "ssn") == "equal"
    assert level({"ssn": "123456789"}, {"ssn": "987654321"}, "ssn") == "contradicts"
    assert level({"ssn": "123456789"}, {}, "ssn") == "missing"
    phone = "+526561234567"
    assert level({"phones": (phone,)}, {"phones": (phone, "+19155550100")}, "phone") == "shared"
    assert level({"phones": (phone,)}, {"phones": ("+19155550100",)}, "phone") == "different"
    assert level({"sex": "F"}, {"sex": "M"}, "sex") == "contradicts"
    assert level({"sex": "X"}, {"sex": "M"}, "sex") == "missing"
    assert level({"postal_code": "32000"}, {"postal_code": "32000"}, "address") == "postal code"
    assert (
        level({"city": "JUAREZ"}, {"city": "JUAREZ", "postal_code": "32500"}, "address") == "city"
    )


def test_same_person_across_the_border_is_certain(model: Model) -> None:
    mx = person(
        "hgcj-1",
        given=("JESUS",),
        curp=MX_CURP,
        roots=(MX_ROOT,),
        phones=("+526561234567",),
        postal_code="32000",
    )
    us = person(
        "umcep-1", given=("CHUY",), canonical=("JESUS",), maternal="", roots=("HEXC850412HRXC",),
        phones=("+526561234567",), postal_code="32000",
    )  # fmt: skip
    result = score(mx, us, model)
    assert result.grade == CERTAIN
    assert result.weight > model.thresholds.certain + 3
    # a nickname, one surname and a birth date alone do not make a link automatic
    bare = score(replace(mx, phones=frozenset(), postal_code=""), us, model)
    assert bare.grade != CERTAIN
    assert result.contradictions == ()
    assert result.probability > 0.999
    assert result.weight == pytest.approx(
        result.prior_weight + sum(fw.weight for fw in result.explanation), abs=1e-6
    )


def test_rare_shared_surname_weighs_more_than_a_common_one(model: Model) -> None:
    common = score(
        person(paternal="HERNANDEZ", maternal="GARCIA"),
        person("umcep-1", paternal="HERNANDEZ", maternal="GARCIA"),
        model,
    )
    rare = score(
        person(paternal="ANCHONDO", maternal="ZUBIATE"),
        person("umcep-1", paternal="ANCHONDO", maternal="ZUBIATE"),
        model,
    )
    assert weight_of(rare, "surnames") > weight_of(common, "surnames") + 5
    assert rare.weight > common.weight
    # a name the Census files do not list gets the level's plain weight
    unknown = score(
        person(paternal="QWXYZ", maternal="ZZYZX"),
        person("umcep-1", paternal="QWXYZ", maternal="ZZYZX"),
        model,
    )
    both = model.comparison("surnames").levels[1]
    assert weight_of(unknown, "surnames") == pytest.approx(both.weight, abs=1e-3)


def test_twins_are_never_certain(model: Model) -> None:
    def twin(ident: str, given: str) -> Features:
        return person(
            ident,
            given=(given,),
            curp="",
            roots=(),
            phones=("+526561234567",),
            postal_code="32000",
            city="JUAREZ",
        )

    same = score(twin("hgcj-1", "RICARDO"), twin("umcep-1", "RICARDO"), model)
    assert same.grade == CERTAIN  # the control: same name, same everything
    twins = score(twin("hgcj-1", "RICARDO"), twin("umcep-1", "EDUARDO"), model)
    assert twins.grade != CERTAIN
    assert "twin" in twins.contradictions
    assert any("twins" in line for line in twins.describe())


def test_father_and_son_namesakes_are_never_certain(model: Model) -> None:
    father = person(
        "hgcj-1",
        given=("JOSE", "LUIS"),
        maternal="LOPEZ",
        born="1960-03-02",
        phones=("+526561234567",),
    )
    son_mother_differs = person(
        "umcep-1",
        given=("JOSE", "LUIS"),
        maternal="RAMIREZ",
        born="1960-03-02",
        phones=("+526561234567",),
    )
    result = score(father, son_mother_differs, model)
    assert result.grade != CERTAIN
    assert "namesake" in result.contradictions
    son_born_later = person(
        "umcep-1", given=("JOSE", "LUIS"), maternal="", born="1988-07-19", phones=("+526561234567",)
    )
    result = score(father, son_born_later, model)
    assert result.grade != CERTAIN
    assert {"namesake", "birth_date"} <= set(result.contradictions)


def test_curp_contradiction_blocks_certain(model: Model) -> None:
    a = person("hgcj-1", curp=MX_CURP, ssn="123456789", phones=("+526561234567",))
    b = person("hgcj-2", curp="HELJ850412HCHRPN09", ssn="123456789", phones=("+526561234567",))
    result = score(a, b, model)
    assert result.weight >= model.thresholds.certain  # everything else agrees
    assert result.contradictions == ("curp",)
    assert result.grade == PROBABLE


def test_explanation_reads_field_level_and_weight(model: Model) -> None:
    result = score(person(), person("umcep-1", maternal="", born="1985-12-04", sex=""), model)
    by_field = {fw.field: fw for fw in result.explanation}
    assert tuple(by_field) == matching_model.FIELDS
    assert by_field["birth_date"].level == "day-month swapped"
    assert by_field["surnames"].level == "one agrees, other unknown"
    assert by_field["sex"].level == "missing"
    assert by_field["sex"].weight == 0.0
    lines = result.describe()
    assert lines[0].startswith(result.grade)
    assert "Birth date: day and month swapped (+" in "\n".join(lines)
    assert lines[-1] == "not compared (missing on one side): curp, ssn, phone, sex, address"
