"""Training: u from random pairs, m by EM, decisions as anchors, determinism, the shipped F1."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import replace

import pytest

from exchange.matching import frequencies
from exchange.matching import model as matching_model
from exchange.matching import train as matching_train
from exchange.matching.features import Features
from exchange.matching.model import Model
from tests.matching.people import person

# Real names in realistic proportions: the Census files the scorer weighs names with
GIVEN = tuple(sorted(frequencies.given_names(), key=frequencies.given_names().__getitem__)[-300:])
SURNAMES = tuple(sorted(frequencies.surnames(), key=frequencies.surnames().__getitem__)[-300:])


def _keys(f: Features) -> Iterable[str]:
    return {f"bd:{f.birth_date}", f"gs:{f.given[0]}|{f.paternal}"}


def population(
    seed: int = 3, people: int = 400, twice: int = 150
) -> tuple[list[Features], set[tuple[str, str]]]:
    """`people` distinct people, `twice` of them registered again with the changes a US
    desk makes (maternal surname dropped, day and month swapped now and then)."""
    rng = random.Random(seed)
    records: list[Features] = []
    truth: set[tuple[str, str]] = set()
    for n in range(people):
        given = rng.choice(GIVEN)
        paternal, maternal = rng.sample(SURNAMES, 2)
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20_000))
        sex = rng.choice("MF")
        records.append(
            person(
                f"hgcj-{n}",
                given=(given,),
                paternal=paternal,
                maternal=maternal,
                born=born.isoformat(),
                sex=sex,
            )
        )
        if n < twice:
            other = born
            if rng.random() < 0.2 and born.day <= 12:
                other = born.replace(month=born.day, day=born.month)
            records.append(
                person(
                    f"umcep-{n}",
                    given=(given,),
                    paternal=paternal,
                    maternal="" if rng.random() < 0.6 else maternal,
                    born=other.isoformat(),
                    sex=sex,
                )
            )
            truth.add((f"hgcj-{n}", f"umcep-{n}"))
    return records, truth


def _train(records: list[Features], **kwargs: object) -> Model:
    return matching_train.train(
        records,
        base=matching_model.initial(),
        keys=_keys,
        u_pairs=20_000,
        today=dt.date(2026, 11, 24),
        **kwargs,  # type: ignore[arg-type]
    )


def _level(model: Model, field: str, label: str) -> matching_model.Level:
    comparison = model.comparison(field)
    return next(level for level in comparison.levels if level.label == label)


def test_u_is_measured_on_random_pairs_and_m_found_by_em() -> None:
    records, _ = population()
    model = _train(records)
    # u: half the random pairs are of the same sex; same birth date is rare
    assert _level(model, "sex", "equal").u == pytest.approx(0.5, abs=0.05)
    assert _level(model, "birth_date", "exact").u < 0.005
    # m: the same person keeps the birth date and the paternal surname
    assert _level(model, "birth_date", "exact").m > 0.7
    assert _level(model, "birth_date", "day-month swapped").m > 0.02
    surnames = model.comparison("surnames")
    agreeing = sum(level.m for level in surnames.levels[1:5])
    assert agreeing > 0.9
    assert _level(model, "surnames", "one agrees, other unknown").weight > 0
    sessions = model.training["em_sessions"]
    assert [s["fixed"] for s in sessions] == [["birth_date"], ["given", "surnames"]]
    assert all(s["candidate_pairs"] > 0 for s in sessions)
    assert model.training["u_random_pairs"] == 20_000
    assert 0 < model.probability_two_random_records_match < 0.01


def test_same_records_and_seed_give_the_same_model() -> None:
    records, _ = population()
    assert _train(records, seed=5) == _train(records, seed=5)
    assert _train(records, seed=5) != _train(records, seed=6)  # another u sample


def test_steward_decisions_anchor_m() -> None:
    records, _ = population()
    # crossed surnames never happen in this population; stewards accepted 40 such pairs
    decided = []
    for n in range(40):
        a = person(f"hgcj-x{n}", paternal="REYES", maternal="CRUZ", born=f"19{60 + n}-02-03")
        b = person(f"umcep-x{n}", paternal="CRUZ", maternal="REYES", born=f"19{60 + n}-02-03")
        decided.append((a, b, True))
    plain = _train(records)
    anchored = _train(records, decisions=decided)
    assert _level(anchored, "surnames", "crossed").m > 10 * _level(plain, "surnames", "crossed").m
    assert anchored.training["decisions"] == 40
    # rejecting pairs EM would call matches takes their mass out of m
    twins = [(records[2 * n], records[2 * n + 1], False) for n in range(100)]
    rejected = _train(records, decisions=twins)
    assert _level(rejected, "birth_date", "exact").m < _level(plain, "birth_date", "exact").m


def test_new_version_each_training() -> None:
    records, _ = population(people=50, twice=20)
    model = _train(records)
    assert model.version == "2026.11.1"
    assert model.training["base"] == "0.0.0"
    again = matching_train.train(
        records, base=model, keys=_keys, u_pairs=1_000, today=dt.date(2026, 11, 30)
    )
    assert again.version == "2026.11.2"
    assert matching_train.next_version("2026.11.7", dt.date(2027, 1, 2)) == "2027.1.1"
    with pytest.raises(ValueError, match="at least two"):
        _train(records[:1])


def test_pair_metrics() -> None:
    metrics = matching_train.pair_metrics(
        [("a", "1"), ("b", "2"), ("c", "9")], [("a", "1"), ("b", "2"), ("d", "4"), ("e", "5")]
    )
    assert (metrics.true_positives, metrics.false_positives, metrics.false_negatives) == (2, 1, 2)
    assert metrics.precision == pytest.approx(2 / 3)
    assert metrics.recall == pytest.approx(0.5)
    assert metrics.f1 == pytest.approx(4 / 7)


def test_retraining_on_the_benchmark_data_reproduces_the_shipped_f1() -> None:
    """The shipped model's recorded quality is what its recipe gives today: the same
    synthetic training population and seed give the same m and u, and with the shipped
    thresholds the same held-out F1 (the thresholds' own choice runs on a population too
    large for a unit test: `python benchmarks/train_default_model.py`)."""
    from benchmarks import train_default_model as recipe

    shipped = matching_model.default()
    assert shipped.training["train_seed"] == recipe.TRAIN_SEED
    assert shipped.metrics["held_out_seed"] == recipe.HOLDOUT_SEED
    retrained = recipe.fit(recipe.population(recipe.TRAIN_SEED))
    for mine, theirs in zip(retrained.comparisons, shipped.comparisons, strict=True):
        for level, shipped_level in zip(mine.levels, theirs.levels, strict=True):
            assert level.m == pytest.approx(shipped_level.m, abs=0.01)
            assert level.u == pytest.approx(shipped_level.u, abs=0.01)
    metrics = recipe.evaluate(
        replace(retrained, thresholds=shipped.thresholds), recipe.population(recipe.HOLDOUT_SEED)
    )
    for key in ("f1_certain_probable", "precision_certain", "recall_certain_probable"):
        assert metrics[key] == pytest.approx(shipped.metrics[key], abs=0.01), key
    assert metrics["f1_certain_probable"] >= 0.97
    assert metrics["precision_certain"] >= 0.999
