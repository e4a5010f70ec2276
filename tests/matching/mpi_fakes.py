"""A scorer with grades chosen per pair, so the MPI's plumbing is tested on its own rules
(conflicts, reviews, stewards' decisions) whatever the shipped model says of a pair."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from exchange.matching.features import Features

PROBABILITY = {"certain": 0.999, "probable": 0.9, "possible": 0.4, "certainly-not": 0.001}


@dataclass(frozen=True)
class FakeFieldWeight:
    field: str
    level: str
    weight: float


@dataclass(frozen=True)
class FakeScore:
    probability: float
    weight: float
    grade: str
    explanation: tuple[FakeFieldWeight, ...]
    contradictions: tuple[str, ...] = ()


@dataclass
class Grades:
    """`grades[{"hgcj-1", "umcep-1"}]`: the grade of that pair (default certainly-not)."""

    pairs: dict[frozenset[str], str] = field(default_factory=dict)

    def set(self, a: str, b: str, grade: str) -> None:
        self.pairs[frozenset({a, b})] = grade

    def score(self, a: Features, b: Features, model: object) -> FakeScore:
        grade = self.pairs.get(frozenset({a.id, b.id}), "certainly-not")
        probability = PROBABILITY[grade]
        explanation = (FakeFieldWeight("birth_date", "exact", 6.5),)
        return FakeScore(probability, 10.0 if grade == "certain" else 1.0, grade, explanation)


def install(monkeypatch: pytest.MonkeyPatch) -> Grades:
    grades = Grades()
    for module in ("service", "operations", "review"):
        monkeypatch.setattr(f"exchange.matching.{module}.score", grades.score)
    return grades
