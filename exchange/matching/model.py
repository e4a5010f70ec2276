"""A Fellegi-Sunter model: m/u probabilities per comparison level, in Splink's JSON layout.

The file is laid out like a Splink 4 settings/model JSON (`comparisons[].comparison_levels[]`
with `label_for_charts`, `m_probability`, `u_probability`, `is_null_level`,
`tf_adjustment_column`, `tf_adjustment_weight`, `tf_minimum_u_value`, and
`probability_two_random_records_match`), so the door stays open to bulk linkage through
Splink; Puente's own additions live in a `puente` section: the version, the grade
thresholds, when and on what the model was trained, and its measured quality.

Levels are identified by `label_for_charts` and their order; `SCHEMA` below is the one
list of comparisons and levels the scorer knows, and `from_json` refuses a file that
does not follow it (a model from another scorer would silently mean something else).
Pure: no I/O except `default()`, which reads the shipped file from the package.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

# No level may claim certainty: log2(m/u) stays finite and one field cannot outvote all.
PROBABILITY_FLOOR = 1e-6
DEFAULT_MODEL_FILE = "model-2026.11.1.json"


class ModelError(ValueError):
    """A model document that does not follow the scorer's schema (operator error)."""


@dataclass(frozen=True, slots=True)
class LevelSpec:
    label: str  # label_for_charts, the level's identity
    description: str  # what a person reads in an explanation
    is_null: bool = False
    tf_column: str | None = None  # "surname" or "given": names weighed by frequency


@dataclass(frozen=True, slots=True)
class ComparisonSpec:
    field: str  # output_column_name
    description: str
    levels: tuple[LevelSpec, ...]

    def index(self, label: str) -> int:
        for position, level in enumerate(self.levels):
            if level.label == label:
                return position
        raise KeyError(label)


def _missing(field_name: str) -> LevelSpec:
    return LevelSpec("missing", f"{field_name} missing on one side", is_null=True)


# The comparisons, in the order the scorer evaluates them; within one, the first level
# that applies wins (score.py). Level 0 is always the null level: weight 0.
SCHEMA: tuple[ComparisonSpec, ...] = (
    ComparisonSpec(
        "given",
        "Given names",
        (
            _missing("given name"),
            LevelSpec("exact", "same given names", tf_column="given"),
            LevelSpec(
                "contained", "one record's given names within the other's", tf_column="given"
            ),
            LevelSpec("nickname", "nickname or equivalent (Lupe = Guadalupe)"),
            LevelSpec("jaro-winkler >= 0.92", "very similar spelling"),
            LevelSpec("jaro-winkler >= 0.80", "similar spelling"),
            LevelSpec("initial", "an initial agrees"),
            LevelSpec("different", "different given names"),
        ),
    ),
    ComparisonSpec(
        "surnames",
        "Surnames",
        (
            _missing("surname"),
            LevelSpec("both agree", "both surnames agree", tf_column="surname"),
            LevelSpec("crossed", "both surnames agree, in the other order", tf_column="surname"),
            LevelSpec(
                "one agrees, other similar",
                "one surname agrees, the other is spelled or sounds alike",
                tf_column="surname",
            ),
            LevelSpec(
                "one agrees, other unknown",
                "one surname agrees, the other record has only one",
                tf_column="surname",
            ),
            LevelSpec(
                "one agrees, other differs",
                "one surname agrees, the other differs",
                tf_column="surname",
            ),
            LevelSpec("phonetic", "surnames sound alike"),
            LevelSpec("jaro-winkler >= 0.90", "surnames spelled similarly"),
            LevelSpec("different", "different surnames"),
        ),
    ),
    ComparisonSpec(
        "birth_date",
        "Birth date",
        (
            _missing("birth date"),
            LevelSpec("exact", "same birth date"),
            LevelSpec("day-month swapped", "day and month swapped"),
            LevelSpec("year off by one", "same day and month, year off by one"),
            LevelSpec("one component differs", "two of day, month and year agree"),
            LevelSpec("different", "different birth dates"),
        ),
    ),
    ComparisonSpec(
        "curp",
        "CURP",
        (
            _missing("CURP"),
            LevelSpec("equal", "same CURP"),
            LevelSpec(
                "root agrees", "the CURP agrees with the other record's name, birth date and sex"
            ),
            LevelSpec(
                "root differs", "the CURP disagrees with the other record's name, birth date or sex"
            ),
            LevelSpec("contradicts", "different CURPs"),
        ),
    ),
    ComparisonSpec(
        "ssn",
        "SSN",
        (
            _missing("SSN"),
            LevelSpec("equal", "same SSN"),
            LevelSpec("contradicts", "different SSNs"),
        ),
    ),
    ComparisonSpec(
        "phone",
        "Phone",
        (
            _missing("phone"),
            LevelSpec("shared", "a phone number in common"),
            LevelSpec("different", "no phone number in common"),
        ),
    ),
    ComparisonSpec(
        "sex",
        "Sex",
        (
            _missing("sex"),
            LevelSpec("equal", "same sex"),
            LevelSpec("contradicts", "different sex"),
        ),
    ),
    ComparisonSpec(
        "address",
        "Address",
        (
            _missing("address"),
            LevelSpec("postal code", "same postal code"),
            LevelSpec("city", "same city"),
            LevelSpec("different", "different place"),
        ),
    ),
)
FIELDS: tuple[str, ...] = tuple(spec.field for spec in SCHEMA)


@dataclass(frozen=True, slots=True)
class Level:
    label: str
    m: float  # P(level | same person); 0 for the null level
    u: float  # P(level | different people); 0 for the null level
    is_null: bool = False
    tf_column: str | None = None
    tf_weight: float = 0.0  # 0 ignores name frequencies, 1 is Splink's full adjustment
    tf_minimum_u: float = 0.0  # floor on a name's frequency in the adjustment

    @property
    def weight(self) -> float:
        """log2 of the Bayes factor m/u, with both floored; 0 for the null level."""
        if self.is_null:
            return 0.0
        return math.log2(max(self.m, PROBABILITY_FLOOR) / max(self.u, PROBABILITY_FLOOR))


@dataclass(frozen=True, slots=True)
class Comparison:
    field: str
    description: str
    levels: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Match weights (log2 odds, prior included) at which each grade begins."""

    certain: float
    probable: float
    possible: float

    def __post_init__(self) -> None:
        if not self.certain >= self.probable >= self.possible:
            raise ModelError("thresholds must satisfy certain >= probable >= possible")


@dataclass(frozen=True, slots=True)
class Model:
    version: str
    probability_two_random_records_match: float
    comparisons: tuple[Comparison, ...]
    thresholds: Thresholds
    created: str = ""
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prior_weight(self) -> float:
        """log2 prior odds that two records picked at random are the same person."""
        p = self.probability_two_random_records_match
        return math.log2(p / (1.0 - p))

    def comparison(self, field_name: str) -> Comparison:
        return self.comparisons[FIELDS.index(field_name)]

    def weights(self) -> tuple[tuple[float, ...], ...]:
        """Per comparison, per level: the log2 Bayes factor (before name frequencies)."""
        return tuple(tuple(level.weight for level in c.levels) for c in self.comparisons)

    def with_probabilities(
        self,
        *,
        m: Sequence[Sequence[float]] | None = None,
        u: Sequence[Sequence[float]] | None = None,
        **changes: Any,
    ) -> Model:
        """A copy with new m and/or u per comparison and level (null levels stay 0)."""
        comparisons = []
        for c_index, comparison in enumerate(self.comparisons):
            levels = []
            for l_index, level in enumerate(comparison.levels):
                if level.is_null:
                    levels.append(level)
                    continue
                new_m = level.m if m is None else _floored(m[c_index][l_index])
                new_u = level.u if u is None else _floored(u[c_index][l_index])
                levels.append(replace(level, m=new_m, u=new_u))
            comparisons.append(replace(comparison, levels=tuple(levels)))
        return replace(self, comparisons=tuple(comparisons), **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "link_type": "link_only",
            "unique_id_column_name": "id",
            "probability_two_random_records_match": self.probability_two_random_records_match,
            "comparisons": [_comparison_json(c) for c in self.comparisons],
            "puente": {
                "version": self.version,
                "thresholds": {
                    "unit": "match weight (log2 odds, prior included)",
                    "certain": self.thresholds.certain,
                    "probable": self.thresholds.probable,
                    "possible": self.thresholds.possible,
                },
                "created": self.created,
                "training": dict(self.training),
                "metrics": dict(self.metrics),
            },
        }


def _floored(p: float) -> float:
    return min(max(float(p), PROBABILITY_FLOOR), 1.0)


def _comparison_json(comparison: Comparison) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    spec = SCHEMA[FIELDS.index(comparison.field)]
    for level, level_spec in zip(comparison.levels, spec.levels, strict=True):
        doc: dict[str, Any] = {"label_for_charts": level.label, "is_null_level": level.is_null}
        if not level.is_null:
            doc["m_probability"] = level.m
            doc["u_probability"] = level.u
        if level.tf_column is not None:
            doc["tf_adjustment_column"] = level.tf_column
            doc["tf_adjustment_weight"] = level.tf_weight
            doc["tf_minimum_u_value"] = level.tf_minimum_u
        doc["comparison_description"] = level_spec.description
        levels.append(doc)
    return {
        "output_column_name": comparison.field,
        "comparison_description": comparison.description,
        "comparison_levels": levels,
    }


def _number(doc: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelError(f"{where}: {key} must be a finite number")
    return float(value)


def _probability(doc: Mapping[str, Any], key: str, where: str) -> float:
    value = _number(doc, key, where)
    if not 0.0 <= value <= 1.0:
        raise ModelError(f"{where}: {key} must be between 0 and 1")
    return _floored(value)


def _level_from_json(doc: Any, spec: LevelSpec, where: str) -> Level:
    if not isinstance(doc, Mapping):
        raise ModelError(f"{where}: a level must be an object")
    if doc.get("label_for_charts") != spec.label:
        raise ModelError(f"{where}: expected level {spec.label!r}")
    if bool(doc.get("is_null_level", False)) != spec.is_null:
        raise ModelError(f"{where}: is_null_level must be {str(spec.is_null).lower()}")
    if spec.is_null:
        return Level(spec.label, 0.0, 0.0, is_null=True)
    tf_column = doc.get("tf_adjustment_column")
    if tf_column not in (None, spec.tf_column):
        raise ModelError(f"{where}: tf_adjustment_column must be {spec.tf_column!r}")
    tf_weight = _number(doc, "tf_adjustment_weight", where, 0.0) if tf_column else 0.0
    if not 0.0 <= tf_weight <= 1.0:
        raise ModelError(f"{where}: tf_adjustment_weight must be between 0 and 1")
    return Level(
        spec.label,
        _probability(doc, "m_probability", where),
        _probability(doc, "u_probability", where),
        tf_column=tf_column,
        tf_weight=tf_weight,
        tf_minimum_u=_number(doc, "tf_minimum_u_value", where, 0.0) if tf_column else 0.0,
    )


def _comparison_from_json(doc: Any, spec: ComparisonSpec) -> Comparison:
    if not isinstance(doc, Mapping) or doc.get("output_column_name") != spec.field:
        raise ModelError(f"expected comparison {spec.field!r}")
    levels = doc.get("comparison_levels")
    if not isinstance(levels, list) or len(levels) != len(spec.levels):
        raise ModelError(f"{spec.field}: expected {len(spec.levels)} comparison_levels")
    return Comparison(
        spec.field,
        str(doc.get("comparison_description", spec.description)),
        tuple(
            _level_from_json(level, level_spec, f"{spec.field}[{i}]")
            for i, (level, level_spec) in enumerate(zip(levels, spec.levels, strict=True))
        ),
    )


def from_json(doc: Mapping[str, Any]) -> Model:
    """A model from its JSON document; ModelError names what does not fit the schema."""
    if not isinstance(doc, Mapping):
        raise ModelError("a model must be a JSON object")
    comparisons = doc.get("comparisons")
    if not isinstance(comparisons, list) or len(comparisons) != len(SCHEMA):
        raise ModelError(f"expected {len(SCHEMA)} comparisons: {', '.join(FIELDS)}")
    puente = doc.get("puente")
    if not isinstance(puente, Mapping):
        raise ModelError("missing the puente section")
    version = puente.get("version")
    if not isinstance(version, str) or not version:
        raise ModelError("puente.version must be a non-empty string")
    thresholds = puente.get("thresholds")
    if not isinstance(thresholds, Mapping):
        raise ModelError("puente.thresholds must be an object")
    prior = _number(doc, "probability_two_random_records_match", "model")
    if not 0.0 < prior < 1.0:
        raise ModelError("probability_two_random_records_match must be between 0 and 1")
    return Model(
        version=version,
        probability_two_random_records_match=prior,
        comparisons=tuple(
            _comparison_from_json(c, spec) for c, spec in zip(comparisons, SCHEMA, strict=True)
        ),
        thresholds=Thresholds(
            certain=_number(thresholds, "certain", "thresholds"),
            probable=_number(thresholds, "probable", "thresholds"),
            possible=_number(thresholds, "possible", "thresholds"),
        ),
        created=str(puente.get("created", "")),
        training=dict(puente.get("training") or {}),
        metrics=dict(puente.get("metrics") or {}),
    )


def loads(text: str) -> Model:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"not JSON (line {exc.lineno})") from None
    return from_json(doc)


def dumps(model: Model) -> str:
    return json.dumps(model.to_json(), indent=2, ensure_ascii=False) + "\n"


@cache
def default() -> Model:
    """The shipped model, trained on synthetic cross-border data (benchmarks/)."""
    text = (
        resources.files("exchange.matching").joinpath("data", DEFAULT_MODEL_FILE).read_text("utf-8")
    )
    return loads(text)


# Starting values for training (EM needs somewhere to start; u is measured, m is not):
# what registration desks on both sides are known to do (DOMAIN.md, "People and their
# names"). Not a model to link with: its thresholds are placeholders.
_INITIAL_M: dict[str, tuple[float, ...]] = {
    "given": (0.0, 0.55, 0.15, 0.12, 0.06, 0.04, 0.03, 0.05),
    "surnames": (0.0, 0.45, 0.03, 0.04, 0.3, 0.04, 0.06, 0.03, 0.05),
    "birth_date": (0.0, 0.85, 0.06, 0.02, 0.04, 0.03),
    "curp": (0.0, 0.45, 0.35, 0.15, 0.05),
    "ssn": (0.0, 0.97, 0.03),
    "phone": (0.0, 0.6, 0.4),
    "sex": (0.0, 0.98, 0.02),
    "address": (0.0, 0.3, 0.4, 0.3),
}
_INITIAL_U: dict[str, tuple[float, ...]] = {
    "given": (0.0, 0.01, 0.005, 0.005, 0.005, 0.05, 0.02, 0.9),
    "surnames": (0.0, 0.0001, 0.00005, 0.00005, 0.003, 0.003, 0.01, 0.01, 0.97),
    "birth_date": (0.0, 0.00004, 0.00004, 0.0001, 0.003, 0.99),
    "curp": (0.0, 0.000001, 0.00001, 0.99, 0.99),
    "ssn": (0.0, 0.000001, 0.999),
    "phone": (0.0, 0.0001, 0.9999),
    "sex": (0.0, 0.5, 0.5),
    "address": (0.0, 0.01, 0.1, 0.89),
}
TF_WEIGHT = 1.0
TF_MINIMUM_U = 1e-5


def initial(version: str = "0.0.0") -> Model:
    """An untrained model in the schema's shape: the starting point of `train`."""
    comparisons = []
    for spec in SCHEMA:
        levels = tuple(
            Level(level.label, 0.0, 0.0, is_null=True)
            if level.is_null
            else Level(
                level.label,
                _INITIAL_M[spec.field][i],
                _INITIAL_U[spec.field][i],
                tf_column=level.tf_column,
                tf_weight=TF_WEIGHT if level.tf_column else 0.0,
                tf_minimum_u=TF_MINIMUM_U if level.tf_column else 0.0,
            )
            for i, level in enumerate(spec.levels)
        )
        comparisons.append(Comparison(spec.field, spec.description, levels))
    return Model(
        version=version,
        probability_two_random_records_match=1e-4,
        comparisons=tuple(comparisons),
        thresholds=Thresholds(certain=12.0, probable=4.0, possible=-2.0),
    )
