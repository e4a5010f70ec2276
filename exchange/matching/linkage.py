"""Offline linkage of two files of FHIR Patients (`puente link`): the `$match` scorer in bulk.

The work, in the order it costs:
1. normalise every line into match features: in worker processes, a chunk at a time;
2. block: for each US record, the ids sharing a blocking key; each Mexican record's
   candidates are the union over its keys (a pair found by two keys is scored once);
3. score: the same levels, weights and grades as `score.score`, the model's weights
   looked up once; the Mexican records are shared out between processes.
Read errors never stop the run: bad lines are named (file and line, never their content)
and skipped, as `puente import` does.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchange.matching import blocking
from exchange.matching import features as matching_features
from exchange.matching.features import Features
from exchange.matching.model import FIELDS, Model
from exchange.matching.score import (
    CERTAIN,
    POSSIBLE,
    PROBABLE,
    Prepared,
    Scorer,
    contradictions,
    given_level,
    grade,
    levels,
    prepare,
    probability,
)
from puente.errors import InvalidResource, Issue, PuenteError
from translation.i18n import N_

CHUNK = 2_000  # lines per normalisation task: small enough for a smooth progress bar
# A blocking key shared by more records of one file than this says little (a birth date
# in a file of millions, a hospital's switchboard number): its pairs would cost more than
# they find, so such a key is skipped, and the other keys still pair the same person.
MAX_BLOCK = 1_000
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class LineError:
    source: str  # file name
    line: int
    issue: Issue  # what was wrong, in catalog words (never the line's content)


@dataclass(frozen=True, slots=True)
class Link:
    mx_id: str
    us_id: str
    probability: float
    weight: float
    grade: str
    field_weights: tuple[float, ...]  # in model.FIELDS order
    contradictions: tuple[str, ...]


def _patient(text: str) -> dict[str, Any]:
    try:
        resource = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidResource(N_("error.import_line_not_json")) from None
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if kind != "Patient":
        raise InvalidResource(
            N_("error.resource_type_mismatch"),
            expected="Patient",
            found=kind if isinstance(kind, str) else "?",
        )
    patient: dict[str, Any] = resource
    if not isinstance(patient.get("id"), str) or not patient["id"]:
        raise InvalidResource(N_("error.id_missing"))
    return patient


def _normalise_chunk(
    source: str, lines: Sequence[tuple[int, str]]
) -> tuple[list[Features], list[LineError]]:
    found: list[Features] = []
    errors: list[LineError] = []
    for number, text in lines:
        try:
            found.append(matching_features.features(_patient(text)))
        except PuenteError as exc:
            errors.append(LineError(source, number, exc.issues[0]))
        except (ValueError, TypeError, KeyError, AttributeError):
            # features() reads what it understands and skips the rest; a shape it cannot
            # read at all is this line's fault, not the run's.
            errors.append(LineError(source, number, Issue(N_("error.invalid_resource"))))
    return found, errors


def _chunks(path: Path) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                chunk.append((number, line))
                if len(chunk) == CHUNK:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk


def count_lines(path: Path) -> int:
    with path.open("rb") as data:
        return sum(1 for line in data if line.strip())


def normalise(
    paths: Sequence[Path], *, workers: int, advance: Progress = lambda n: None
) -> tuple[list[list[Features]], list[LineError]]:
    """Each file's Patients as features (in file order), and the lines that were not."""
    results: list[list[Features]] = [[] for _ in paths]
    errors: list[LineError] = []
    if workers <= 1:
        for index, path in enumerate(paths):
            for chunk in _chunks(path):
                found, bad = _normalise_chunk(path.name, chunk)
                results[index] += found
                errors += bad
                advance(len(chunk))
        return results, errors
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # A few chunks in flight per worker, not the whole files: the parent never holds
        # every line's text at once (what it holds when the scoring workers fork, they
        # share; what it freed, it may not give back to the system).
        pending: deque[tuple[int, int, Future[tuple[list[Features], list[LineError]]]]]
        pending = deque()

        def collect() -> None:
            index, size, future = pending.popleft()
            found, bad = future.result()
            results[index] += found
            errors.extend(bad)
            advance(size)

        for index, path in enumerate(paths):
            for chunk in _chunks(path):
                pending.append((index, len(chunk), pool.submit(_normalise_chunk, path.name, chunk)))
                if len(pending) >= workers * 4:
                    collect()
        while pending:
            collect()
    return results, errors


def block(us: Sequence[Features], *, max_block: int = MAX_BLOCK) -> dict[str, list[int]]:
    """Blocking key -> indices of the US records that have it (over-shared keys dropped)."""
    index: dict[str, list[int]] = defaultdict(list)
    for position, f in enumerate(us):
        for key in blocking.blocking_keys(f):
            index[key].append(position)
    return {key: ids for key, ids in index.items() if len(ids) <= max_block}


class _Linker:
    """The scorer in bulk: a pair that cannot reach the lowest grade written stops before
    its name frequencies are looked up (most candidate pairs are strangers born the same
    day), and only written pairs get their explanation."""

    def __init__(self, model: Model, *, lowest: str) -> None:
        self.scorer = Scorer(model)
        thresholds = model.thresholds
        self.floor = thresholds.possible if lowest == POSSIBLE else thresholds.probable
        self.written = (CERTAIN, PROBABLE, POSSIBLE) if lowest == POSSIBLE else (CERTAIN, PROBABLE)

    def link(self, a: Prepared, b: Prepared, given: int | None = None) -> Link | None:
        lv = levels(a, b, given)
        scorer = self.scorer
        if scorer.upper_bound(lv) < self.floor:
            return None
        weights = scorer.field_weights(a, b, lv)
        total = scorer.prior + sum(round(w, 4) for w in weights)
        if total < self.floor:
            return None
        found = contradictions(a, b, lv)
        graded = grade(scorer.model, total, found)
        if graded not in self.written:
            return None
        return Link(
            a.features.id,
            b.features.id,
            probability(total),
            total,
            graded,
            tuple(round(w, 4) for w in weights),
            found,
        )


# Set in the parent before the worker processes fork: they read it, never copy it.
_SHARED: dict[str, Any] = {}


def _score_range(start: int, stop: int) -> tuple[list[Link], int]:
    """Score the Mexican records start..stop against their candidates (in a worker)."""
    us: list[Prepared] = _SHARED["us"]
    us_given: list[int] = _SHARED["us_given"]
    index: dict[str, list[int]] = _SHARED["index"]
    linker: _Linker = _SHARED["linker"]
    signatures: dict[tuple[object, ...], int] = _SHARED["signatures"]
    given_levels: dict[int, int] = _SHARED.setdefault("given_levels", {})
    width = _SIGNATURE_SPACE
    found: list[Link] = []
    pairs = 0
    for f in _SHARED["mx"][start:stop]:
        a = prepare(f)
        candidates: set[int] = set()
        for key in blocking.blocking_keys(f):
            hits = index.get(key)
            if hits:
                candidates.update(hits)
        pairs += len(candidates)
        a_given = signatures.get(a.given_signature, -1)
        links = []
        for j in candidates:
            b = us[j]
            # Common given names meet again and again: their level is looked up once.
            if a_given >= 0:
                cache_key = a_given * width + us_given[j]
                given = given_levels.get(cache_key)
                if given is None:
                    if len(given_levels) >= _CACHE_LIMIT:
                        given_levels.clear()  # most pairs of names meet once: keep it small
                    given = given_levels[cache_key] = given_level(a, b)
            else:
                given = given_level(a, b)
            found_link = linker.link(a, b, given)
            if found_link is not None:
                links.append(found_link)
        links.sort(key=lambda link: (-link.weight, link.us_id))
        found += links
    return found, pairs


# Given-name signatures are numbered below this; a pair's cache key is a_id * space + b_id.
_SIGNATURE_SPACE = 1 << 24
# Entries in a process's cache of given-name levels before it starts again (tens of MB):
# 100,000 x 100,000 patients give millions of distinct pairs of names, most seen once.
_CACHE_LIMIT = 1 << 18


@dataclass(frozen=True, slots=True)
class LinkResult:
    links: list[Link]
    candidate_pairs: int


def link(
    mx: Sequence[Features],
    us: Sequence[Features],
    model: Model,
    *,
    include_possible: bool = False,
    workers: int = 1,
    advance: Progress = lambda n: None,
) -> LinkResult:
    """Certain and probable pairs (and possible ones if asked), best first per Mexican
    record, Mexican records in file order."""
    prepared_us = [prepare(f) for f in us]
    signatures: dict[tuple[object, ...], int] = {}
    us_given = [signatures.setdefault(b.given_signature, len(signatures)) for b in prepared_us]
    if len(signatures) >= _SIGNATURE_SPACE:
        signatures.clear()  # a file with more distinct given names than that: no cache
        us_given = [0] * len(prepared_us)
    _SHARED.update(
        mx=mx,
        us=prepared_us,
        us_given=us_given,
        signatures=signatures,
        index=block(us),
        linker=_Linker(model, lowest=POSSIBLE if include_possible else PROBABLE),
    )
    try:
        step = max(1, min(CHUNK, len(mx) // max(workers * 8, 1) or 1))
        ranges = [(start, min(start + step, len(mx))) for start in range(0, len(mx), step)]
        links: list[Link] = []
        pairs = 0
        if workers <= 1:
            for start, stop in ranges:
                found, counted = _score_range(start, stop)
                links += found
                pairs += counted
                advance(stop - start)
            return LinkResult(links, pairs)
        context = multiprocessing.get_context("fork")
        # Every process that scores reads most of the US records, and reading a Python
        # object writes its reference count: each scoring process ends up with its own
        # copy of the pages it read. So the parent, idle otherwise, is one of the
        # `workers`: it forks one process fewer and takes the ranges from the end while
        # the pool takes them from the start, until they meet.
        # A garbage collection in a worker would also write to the header of every
        # container it walks: the parent's objects are frozen out of its reach.
        gc.collect()
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
                futures = [pool.submit(_score_range, start, stop) for start, stop in ranges]
                results: list[tuple[list[Link], int] | None] = [None] * len(ranges)
                for position in reversed(range(len(ranges))):
                    # A range the pool has not started is the parent's; once one has
                    # started, so have all before it (the pool takes them in order).
                    if not futures[position].cancel():
                        break
                    start, stop = ranges[position]
                    results[position] = _score_range(start, stop)
                    advance(stop - start)
                for position, future in enumerate(futures):
                    scored = results[position]
                    if scored is None:
                        scored = future.result()
                        start, stop = ranges[position]
                        advance(stop - start)
                    links += scored[0]
                    pairs += scored[1]
        finally:
            gc.unfreeze()
        return LinkResult(links, pairs)
    finally:
        _SHARED.clear()


def header(*, explain: bool) -> list[str]:
    columns = ["mx_id", "us_id", "score", "grade"]
    if explain:
        columns += [f"{field}_weight" for field in FIELDS] + ["contradictions"]
    return columns


def row(found: Link, *, explain: bool) -> list[str]:
    values = [found.mx_id, found.us_id, f"{found.probability:.6f}", found.grade]
    if explain:
        values += [f"{w:.2f}" for w in found.field_weights] + [" ".join(found.contradictions)]
    return values


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
