"""Train the shipped matching model on synthetic cross-border data and record its quality.

    python benchmarks/train_default_model.py [--out exchange/matching/data/model-2026.11.1.json]

Three independent synthetic populations from `benchmarks/border_pairs.py`, each a
Juárez and an El Paso hospital sharing half their patients, with twins, siblings and
father/son namesakes:
- training (seed TRAIN_SEED): u by random sampling, m by EM (`exchange.matching.train`),
  no labels used;
- validation (seed VALIDATION_SEED, VALIDATION_PER_HOSPITAL patients a side): the
  thresholds. `certain` is the lowest weight at which automatic links stay at least
  CERTAIN_PRECISION precise, plus CERTAIN_MARGIN bits; `probable` the weight that
  maximises F1 of certain+probable links; `possible` POSSIBLE_BELOW bits under it. All
  three then rise by log2(SCALE_PATIENTS / VALIDATION_PER_HOSPITAL) bits: in a population
  k times larger a candidate pair is k times less likely to be the same person (the prior
  falls by log2 k), so the thresholds hold for hospitals of SCALE_PATIENTS patients;
- held out (seed HOLDOUT_SEED): the figures written into the model's `puente.metrics`,
  which `tests/matching/test_train.py` reproduces.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.border_pairs import BorderData, generate
from exchange.matching import linkage, train
from exchange.matching import model as matching_model
from exchange.matching.features import Features, features
from exchange.matching.model import Model, Thresholds
from exchange.matching.score import CERTAIN, PROBABLE

VERSION = "2026.11.1"
CREATED = dt.date(2026, 11, 24)
TRAIN_SEED, VALIDATION_SEED, HOLDOUT_SEED = 2026, 2027, 2028
PATIENTS_PER_HOSPITAL = 4_000
VALIDATION_PER_HOSPITAL = 25_000
SCALE_PATIENTS = 100_000
OVERLAP = 0.5
CERTAIN_PRECISION = 0.9995
CERTAIN_MARGIN = 1.0
POSSIBLE_BELOW = 6.0
TRAIN_U_PAIRS = 300_000


@dataclass(frozen=True)
class Population:
    mx: list[Features]
    us: list[Features]
    truth: set[tuple[str, str]]


def population(seed: int, per_hospital: int = PATIENTS_PER_HOSPITAL) -> Population:
    data: BorderData = generate(per_hospital, per_hospital, overlap=OVERLAP, seed=seed)
    return Population(
        [features(p) for p in data.mx], [features(p) for p in data.us], set(data.truth)
    )


def fit(training: Population, *, seed: int = TRAIN_SEED) -> Model:
    """The trained model, thresholds not yet chosen."""
    return train.train(
        training.mx + training.us,
        base=matching_model.initial(),
        seed=seed,
        u_pairs=TRAIN_U_PAIRS,
        version=VERSION,
        today=CREATED,
    )


def _all_pairs(model: Model, people: Population) -> list[linkage.Link]:
    """Every candidate pair, whatever its grade (thresholds at minus infinity)."""
    open_model = replace(model, thresholds=Thresholds(1e9, -1e9, -1e9))
    return linkage.link(people.mx, people.us, open_model, workers=1).links


def choose_thresholds(model: Model, validation: Population) -> Thresholds:
    pairs = sorted(_all_pairs(model, validation), key=lambda link: -link.weight)
    truth = validation.truth
    # certain: walking down the weights, the last point where automatic links (no
    # contradiction) are still CERTAIN_PRECISION precise
    certain_at, hits, found = pairs[0].weight, 0, 0
    for link in pairs:
        if link.contradictions:
            continue
        found += 1
        hits += (link.mx_id, link.us_id) in truth
        if hits / found >= CERTAIN_PRECISION:
            certain_at = link.weight
        elif found > 50:
            break
    # probable: the weight that maximises F1 of everything at or above it
    best_f1, probable_at, hits = 0.0, certain_at, 0
    for found, link in enumerate(pairs, start=1):
        hits += (link.mx_id, link.us_id) in truth
        f1 = 2 * hits / (found + len(truth))
        if f1 > best_f1:
            best_f1, probable_at = f1, link.weight
    scale = math.log2(SCALE_PATIENTS / len(validation.mx))
    certain = round(certain_at + CERTAIN_MARGIN + scale, 1)
    probable = round(min(probable_at + scale, certain), 1)
    return Thresholds(
        certain=certain, probable=probable, possible=round(probable - POSSIBLE_BELOW, 1)
    )


def evaluate(model: Model, held_out: Population) -> dict[str, Any]:
    links = linkage.link(held_out.mx, held_out.us, model, workers=1).links
    linked = [(link.mx_id, link.us_id) for link in links if link.grade in (CERTAIN, PROBABLE)]
    certain = [(link.mx_id, link.us_id) for link in links if link.grade == CERTAIN]
    both = train.pair_metrics(linked, held_out.truth)
    auto = train.pair_metrics(certain, held_out.truth)
    return {
        "held_out_seed": HOLDOUT_SEED,
        "held_out_patients_per_hospital": len(held_out.mx),
        "held_out_true_pairs": len(held_out.truth),
        "f1_certain_probable": round(both.f1, 4),
        "precision_certain_probable": round(both.precision, 4),
        "recall_certain_probable": round(both.recall, 4),
        "precision_certain": round(auto.precision, 4),
        "recall_certain": round(auto.recall, 4),
    }


def build() -> Model:
    trained = fit(population(TRAIN_SEED))
    thresholds = choose_thresholds(trained, population(VALIDATION_SEED, VALIDATION_PER_HOSPITAL))
    chosen = replace(
        trained,
        thresholds=thresholds,
        training={
            **trained.training,
            "data": "benchmarks/border_pairs.py",
            "train_seed": TRAIN_SEED,
            "validation_seed": VALIDATION_SEED,
            "patients_per_hospital": PATIENTS_PER_HOSPITAL,
            "overlap": OVERLAP,
            "certain_precision_target": CERTAIN_PRECISION,
            "validation_patients_per_hospital": VALIDATION_PER_HOSPITAL,
            "certain_margin_bits": CERTAIN_MARGIN,
            "thresholds_scaled_to_patients": SCALE_PATIENTS,
        },
    )
    return replace(chosen, metrics=evaluate(chosen, population(HOLDOUT_SEED)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1]
        / "exchange/matching/data"
        / matching_model.DEFAULT_MODEL_FILE,
    )
    args = parser.parse_args(argv)
    model = build()
    args.out.write_text(matching_model.dumps(model), encoding="utf-8")
    print(f"model {model.version}: thresholds {model.thresholds}")
    for key, value in model.metrics.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
