"""Training a Fellegi-Sunter model: u by random sampling, m by EM (pure, deterministic).

- u, the chance a level occurs between two different people, is counted over random
  pairs of records (nearly all of them are different people), as Splink's
  `estimate_u_using_random_sampling` does. A level never seen keeps the base model's u,
  capped at one in the number of pairs drawn: absence from a sample is all we know.
- m, the chance a level occurs for the same person, is estimated by expectation
  maximisation over the candidate pairs blocking finds, u held fixed (Fellegi and Sunter
  1969; Winkler 1988), starting from the base model's m.
- Decisions a steward made in the review queue are labelled pairs: their match
  probability is fixed at 1 (accepted) or 0 (rejected) in every EM round, and each
  counts as `DECISION_WEIGHT` candidate pairs, so a few hundred decisions anchor m
  against the tens of thousands of pairs EM guesses about.

The same seed and records give the same model; only `created` and the version follow the
date unless given.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from exchange.matching import blocking
from exchange.matching.features import Features
from exchange.matching.model import SCHEMA, Model
from exchange.matching.score import (
    B_EXACT,
    B_SWAPPED,
    BIRTH_DATE,
    GIVEN,
    SURNAMES,
    Prepared,
    levels,
    prepare,
)

U_PAIRS = 300_000
# A blocking key shared by more records than this (a common birth year and surname in a
# large population) is skipped for EM: its pairs are nearly all different people and
# would only cost time; the other keys still pair the same person.
MAX_BLOCK = 300
DECISION_WEIGHT = 20.0
EM_ITERATIONS = 60
EM_TOLERANCE = 1e-6
PSEUDO_PAIRS = 10.0

Pattern = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PairMetrics:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def pair_metrics(found: Iterable[tuple[str, str]], truth: Iterable[tuple[str, str]]) -> PairMetrics:
    """Precision, recall and F1 of found pairs against the true ones (order-insensitive)."""
    found_set = {tuple(sorted(pair)) for pair in found}
    truth_set = {tuple(sorted(pair)) for pair in truth}
    hits = len(found_set & truth_set)
    return PairMetrics(hits, len(found_set) - hits, len(truth_set) - hits)


def estimate_u(
    prepared: Sequence[Prepared], *, base: Model, pairs: int, rng: random.Random
) -> tuple[list[list[float]], int]:
    """u per comparison and level from random pairs, among pairs where it is not null."""
    n = len(prepared)
    drawn = min(pairs, n * (n - 1) // 2)
    counts = [[0] * len(spec.levels) for spec in SCHEMA]
    for _ in range(drawn):
        i = rng.randrange(n)
        j = rng.randrange(n - 1)
        j += j >= i
        for c_index, level in enumerate(levels(prepared[i], prepared[j])):
            counts[c_index][level] += 1
    u = []
    for c_index, row in enumerate(counts):
        compared = sum(row[1:])
        base_levels = base.comparisons[c_index].levels
        u.append(
            [0.0]
            + [
                count / compared if count else min(base_levels[l_index].u, 1.0 / max(compared, 1))
                for l_index, count in enumerate(row[1:], start=1)
            ]
        )
    return u, drawn


@dataclass(frozen=True, slots=True)
class Pass:
    """One EM session: the pairs sharing a key with one of these prefixes, the comparisons
    the keys are built from left out. A pair blocked on its birth date agrees on it
    whether or not it is one person, so that pass cannot learn m for the birth date (and
    would take every pair for a match); Splink's `estimate_parameters_using_expectation_
    maximisation(blocking_rule)` fixes the blocked comparisons the same way."""

    prefixes: tuple[str, ...]
    excluded: tuple[int, ...]


PASSES = (
    Pass(("bd", "bds"), (BIRTH_DATE,)),  # learns the names, identifiers, phone, address
    Pass(("gs",), (GIVEN, SURNAMES)),  # learns the birth date
)


def candidate_pairs(
    patients: Sequence[Features],
    *,
    keys: Callable[[Features], Iterable[str]],
    prefixes: tuple[str, ...],
    max_block: int,
) -> set[tuple[int, int]]:
    """Index pairs sharing a blocking key with one of these prefixes, each once."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, f in enumerate(patients):
        for key in keys(f):
            if key.partition(":")[0] in prefixes:
                blocks[key].append(index)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) < 2 or len(members) > max_block:
            continue
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                pairs.add((i, j) if i < j else (j, i))
    return pairs


def _log(p: float) -> float:
    return math.log(max(p, 1e-300))


def expectation_maximisation(
    patterns: Counter[Pattern],
    labelled: Sequence[tuple[Pattern, float, float]],
    *,
    m: list[list[float]],
    u: list[list[float]],
    excluded: tuple[int, ...] = (),
    iterations: int = EM_ITERATIONS,
) -> tuple[list[list[float]], float, int]:
    """m and the share of candidate pairs that match, u fixed; labelled = (pattern,
    match probability, weight); the excluded comparisons neither vote nor learn.
    Returns (m, lambda, rounds run)."""
    lam = 0.1
    prior_m = [list(row) for row in m]
    items = list(patterns.items())
    used = [c for c in range(len(m)) if c not in excluded]
    log_u = [[_log(p) for p in row] for row in u]
    rounds = 0
    while rounds < iterations:
        rounds += 1
        log_m = [[_log(p) for p in row] for row in m]
        totals = [[0.0] * len(row) for row in m]
        matched = weighed = 0.0
        prior = math.log(lam) - math.log1p(-lam)
        for pattern, count in items:
            odds_log = prior + sum(
                log_m[c][pattern[c]] - log_u[c][pattern[c]] for c in used if pattern[c]
            )
            posterior = 1.0 / (1.0 + math.exp(-odds_log)) if odds_log > -700 else 0.0
            mass = posterior * count
            matched += mass
            weighed += count
            for c in used:
                totals[c][pattern[c]] += mass
        for pattern, posterior, weight in labelled:
            for c in used:
                totals[c][pattern[c]] += posterior * weight
        new_m = [list(row) for row in m]
        for c in used:
            # PSEUDO_PAIRS matched pairs distributed as the base model says: a level no
            # true pair of the training data shows (a CURP on both sides) keeps some m.
            compared = sum(totals[c][1:]) + PSEUDO_PAIRS
            new_m[c] = [0.0] + [
                (value + PSEUDO_PAIRS * prior_m[c][level]) / compared
                for level, value in enumerate(totals[c][1:], start=1)
            ]
        change = max(abs(a - b) for c in used for a, b in zip(new_m[c], m[c], strict=True))
        m = new_m
        lam = min(max(matched / weighed, 1e-9), 1 - 1e-9) if weighed else lam
        if change < EM_TOLERANCE:
            break
    return m, lam, rounds


def next_version(base: str, today: dt.date) -> str:
    """YEAR.MONTH.N: the next N in the base's month, or 1 in a new month."""
    month = f"{today.year}.{today.month}"
    head, _, tail = base.rpartition(".")
    if head == month and tail.isdigit():
        return f"{month}.{int(tail) + 1}"
    return f"{month}.1"


def _average(
    estimates: Sequence[list[list[float]]], start: list[list[float]], learned: list[set[int]]
) -> list[list[float]]:
    """Per comparison, the mean of the passes that learned it (the start if none did)."""
    result = []
    for c, row in enumerate(start):
        rows = [
            estimate[c] for estimate, which in zip(estimates, learned, strict=True) if c in which
        ]
        result.append(
            [sum(values) / len(rows) for values in zip(*rows, strict=True)] if rows else list(row)
        )
    return result


def train(
    patients: Sequence[Features],
    *,
    base: Model,
    decisions: Sequence[tuple[Features, Features, bool]] = (),
    seed: int = 0,
    u_pairs: int = U_PAIRS,
    max_block: int = MAX_BLOCK,
    keys: Callable[[Features], Iterable[str]] = blocking.blocking_keys,
    version: str | None = None,
    today: dt.date | None = None,
) -> Model:
    """A new model: u from random pairs of `patients`, m by EM over their blocked pairs
    and the stewards' decisions; thresholds and name-frequency settings from `base`."""
    if len(patients) < 2:
        raise ValueError("training needs at least two patients")
    rng = random.Random(seed)  # noqa: S311 - sampling, reproducible by seed
    prepared = [prepare(f) for f in patients]
    u, drawn = estimate_u(prepared, base=base, pairs=u_pairs, rng=rng)
    decided = {tuple(sorted((a.id, b.id))) for a, b, _ in decisions}
    labelled = [
        (levels(prepare(a), prepare(b)), 1.0 if accepted else 0.0, DECISION_WEIGHT)
        for a, b, accepted in decisions
    ]
    start_m = [[level.m for level in c.levels] for c in base.comparisons]
    estimates, learned, sessions = [], [], []
    for session in PASSES:
        patterns: Counter[Pattern] = Counter()
        pairs = candidate_pairs(patients, keys=keys, prefixes=session.prefixes, max_block=max_block)
        for i, j in sorted(pairs):
            if tuple(sorted((patients[i].id, patients[j].id))) not in decided:
                patterns[levels(prepared[i], prepared[j])] += 1
        m, lam, rounds = expectation_maximisation(
            patterns, labelled, m=start_m, u=u, excluded=session.excluded
        )
        estimates.append(m)
        learned.append({c for c in range(len(SCHEMA)) if c not in session.excluded})
        sessions.append((session, sum(patterns.values()), lam, rounds))
    m = _average(estimates, start_m, learned)
    n = len(patients)
    # Matches among all pairs: those the birth-date pass found, over the share of true
    # pairs that share a birth-date key (exact or swapped), as m says.
    _, candidates, lam, _ = sessions[0]
    blocked_share = m[BIRTH_DATE][B_EXACT] + m[BIRTH_DATE][B_SWAPPED]
    matches = lam * candidates / max(blocked_share, 1e-6)
    prior = min(max(matches / (n * (n - 1) / 2), 1e-12), 0.5)
    today = today or dt.datetime.now(dt.UTC).date()
    return base.with_probabilities(
        m=m,
        u=u,
        version=version or next_version(base.version, today),
        probability_two_random_records_match=prior,
        created=today.isoformat(),
        training={
            "base": base.version,
            "patients": n,
            "seed": seed,
            "u_random_pairs": drawn,
            "em_sessions": [
                {
                    "blocking_keys": list(session.prefixes),
                    "fixed": [SCHEMA[c].field for c in session.excluded],
                    "candidate_pairs": count,
                    "match_share": round(share, 6),
                    "iterations": rounds,
                }
                for session, count, share, rounds in sessions
            ],
            "decisions": len(decisions),
        },
        metrics={},
    )
