"""The model file: Splink's layout, a lossless round trip, floors, refusal of foreign files."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from exchange.matching import model as matching_model
from exchange.matching.model import PROBABILITY_FLOOR, SCHEMA, ModelError


def _doc() -> dict[str, Any]:
    return copy.deepcopy(matching_model.default().to_json())


def test_shipped_model_is_laid_out_like_a_splink_model() -> None:
    doc = _doc()
    assert 0 < doc["probability_two_random_records_match"] < 1
    assert [c["output_column_name"] for c in doc["comparisons"]] == list(matching_model.FIELDS)
    for comparison, spec in zip(doc["comparisons"], SCHEMA, strict=True):
        levels = comparison["comparison_levels"]
        assert [level["label_for_charts"] for level in levels] == [s.label for s in spec.levels]
        assert levels[0]["is_null_level"] is True
        assert "m_probability" not in levels[0]
        for level in levels[1:]:
            assert level["is_null_level"] is False
            assert PROBABILITY_FLOOR <= level["m_probability"] <= 1
            assert PROBABILITY_FLOOR <= level["u_probability"] <= 1
        # m of the non-null levels is a distribution (EM's output)
        assert sum(level["m_probability"] for level in levels[1:]) == pytest.approx(1, abs=1e-3)
    surnames = doc["comparisons"][1]["comparison_levels"]
    assert surnames[1]["tf_adjustment_column"] == "surname"
    assert surnames[1]["tf_adjustment_weight"] == 1.0
    puente = doc["puente"]
    assert puente["version"] == "2026.11.1"
    t = puente["thresholds"]
    assert t["certain"] > t["probable"] > t["possible"]
    assert puente["metrics"]["f1_certain_probable"] >= 0.9


def test_json_round_trip_is_lossless() -> None:
    shipped = matching_model.default()
    again = matching_model.loads(matching_model.dumps(shipped))
    assert again == shipped
    assert again.to_json() == shipped.to_json()


def test_floors_keep_every_weight_finite() -> None:
    doc = _doc()
    given = doc["comparisons"][0]["comparison_levels"]
    given[1]["m_probability"] = 0.0
    given[7]["u_probability"] = 0.0
    model = matching_model.from_json(doc)
    levels = model.comparison("given").levels
    assert levels[1].m == PROBABILITY_FLOOR
    assert levels[7].u == PROBABILITY_FLOOR
    for comparison in model.comparisons:
        for level in comparison.levels:
            assert math.isfinite(level.weight)
            assert abs(level.weight) <= math.log2(1 / PROBABILITY_FLOOR)
    assert model.comparison("given").levels[0].weight == 0.0  # missing: no evidence


def test_with_probabilities_floors_too() -> None:
    shipped = matching_model.default()
    zeros = [[0.0] * len(c.levels) for c in shipped.comparisons]
    model = shipped.with_probabilities(m=zeros, version="x")
    assert model.version == "x"
    assert all(
        level.m == PROBABILITY_FLOOR
        for c in model.comparisons
        for level in c.levels
        if not level.is_null
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d["comparisons"].pop(), "expected 8 comparisons"),
        (
            lambda d: d["comparisons"][0].update(output_column_name="first_name"),
            "expected comparison 'given'",
        ),
        (
            lambda d: d["comparisons"][2]["comparison_levels"][1].update(
                label_for_charts="Exact match"
            ),
            "birth_date[1]: expected level 'exact'",
        ),
        (
            lambda d: d["comparisons"][3]["comparison_levels"][1].update(m_probability=1.5),
            "curp[1]: m_probability must be between 0 and 1",
        ),
        (
            lambda d: d["comparisons"][4]["comparison_levels"][1].update(u_probability="0.1"),
            "ssn[1]: u_probability must be a finite number",
        ),
        (lambda d: d.update(probability_two_random_records_match=0), "between 0 and 1"),
        (lambda d: d.pop("puente"), "missing the puente section"),
        (
            lambda d: d["puente"]["thresholds"].update(certain=-50),
            "certain >= probable >= possible",
        ),
    ],
)
def test_a_file_that_does_not_fit_is_refused_by_name(damage: Any, message: str) -> None:
    doc = _doc()
    damage(doc)
    with pytest.raises(ModelError, match=message.replace("[", r"\[").replace("]", r"\]")):
        matching_model.from_json(doc)


def test_not_json_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not JSON"):
        matching_model.loads("{nope")
    with pytest.raises(ModelError, match="JSON object"):
        matching_model.loads(json.dumps([1, 2]))
