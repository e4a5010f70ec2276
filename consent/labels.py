"""Security labelling on ingest: sensitivity labels from coded content (pure, no I/O).

The code lists are data (`data/sensitivity.csv`), one set of rows per code system because
ICD-10-CM and WHO ICD-10 (CIE-10) differ (DOMAIN.md, "Labels and purposes"). A row is a
code or a range of three-character categories (`F10`-`F19`) matched as a prefix of the
code without its dot (ICD), or one exact code (LOINC); `exclude` rows carve exceptions
(`F17` out of `F10`-`F19`), the longest matching prefix deciding. `lists_version()`
changes whenever the lists do, so stored resources can be relabelled.

`42CFRPart2` and `NORDSCLCD` come only from the program flag (42 CFR 2.11-2.12: Part 2
follows the program, not the diagnosis); labels a sender put on a resource are kept.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from consent.codes import ACT_CODE, PART2_LABELS, Label

LISTS = Path(__file__).parent / "data" / "sensitivity.csv"
_MIN_PREFIX = 3  # an ICD category has three characters


@dataclass(frozen=True, slots=True)
class CodeLists:
    """The lists compiled: (system, code prefix) -> ((label, include), ...)."""

    version: str
    prefix: dict[tuple[str, str], tuple[tuple[Label, bool], ...]]
    exact: dict[tuple[str, str], tuple[tuple[Label, bool], ...]]

    def labels_of(self, system: str, code: str) -> frozenset[Label]:
        hits = self.exact.get((system, code.strip()), ())
        key = _normalise(code)
        decided: dict[Label, bool] = {}
        for label, include in hits:
            decided.setdefault(label, include)
        for length in range(len(key), _MIN_PREFIX - 1, -1):
            for label, include in self.prefix.get((system, key[:length]), ()):
                decided.setdefault(label, include)
        return frozenset(label for label, include in decided.items() if include)


def _normalise(code: str) -> str:
    return code.strip().upper().replace(".", "")


def _expand(start: str, end: str) -> Iterator[str]:
    """`F10`..`F19` -> F10, F11, ... F19 (same letter, a two-digit range)."""
    if not end:
        yield _normalise(start).rstrip("-")
        return
    low, high = _normalise(start), _normalise(end)
    if len(low) != 3 or len(high) != 3 or low[0] != high[0] or int(low[1:]) > int(high[1:]):
        raise ValueError(f"bad range {start}-{end}")
    for number in range(int(low[1:]), int(high[1:]) + 1):
        yield f"{low[0]}{number:02d}"


def _put(entries: dict[Label, bool], label: Label, include: bool) -> None:
    entries[label] = entries.get(label, True) and include


def compile_lists(text: str) -> CodeLists:
    """The lists of a CSV text (header `system,from,to,match,label,effect,note`)."""
    # At one key, an exclude row beats an include row (`F17` inside `F10`-`F19`).
    prefix: dict[tuple[str, str], dict[Label, bool]] = {}
    exact: dict[tuple[str, str], dict[Label, bool]] = {}
    for row in csv.DictReader(text.splitlines()):
        label = Label(ACT_CODE, row["label"])
        if row["effect"] not in ("include", "exclude"):
            raise ValueError(f"unknown effect {row['effect']!r}")
        include = row["effect"] == "include"
        if row["match"] == "exact":
            _put(exact.setdefault((row["system"], row["from"].strip()), {}), label, include)
            continue
        if row["match"] != "prefix":
            raise ValueError(f"unknown match {row['match']!r}")
        for code in _expand(row["from"], row["to"]):
            _put(prefix.setdefault((row["system"], code), {}), label, include)
    return CodeLists(
        version=hashlib.sha256(text.encode()).hexdigest()[:16],
        prefix={key: tuple(value.items()) for key, value in prefix.items()},
        exact={key: tuple(value.items()) for key, value in exact.items()},
    )


@lru_cache(maxsize=1)
def shipped_lists() -> CodeLists:
    return compile_lists(LISTS.read_text(encoding="utf-8"))


def lists_version() -> str:
    """A hash of the shipped lists: stored labels made under another version are stale."""
    return shipped_lists().version


def _concepts(resource: Mapping[str, Any]) -> Iterator[Any]:
    """The CodeableConcepts whose codes say what a resource is about, per type."""
    kind = resource.get("resourceType")
    if kind == "Condition":
        yield resource.get("code")
    elif kind == "Observation":
        yield resource.get("code")
        yield resource.get("valueCodeableConcept")
        for component in resource.get("component") or ():
            yield component.get("code")
            yield component.get("valueCodeableConcept")
    elif kind in ("MedicationRequest", "MedicationStatement"):
        yield resource.get("medicationCodeableConcept")
        yield from resource.get("reasonCode") or ()
    elif kind == "Procedure":
        yield resource.get("code")
        yield from resource.get("reasonCode") or ()
    elif kind == "Encounter":
        yield from resource.get("reasonCode") or ()
    elif kind == "DocumentReference":
        yield resource.get("type")
        yield from resource.get("category") or ()
        yield from (resource.get("context") or {}).get("event") or ()
    yield from _contained_diagnoses(resource)


def _contained_diagnoses(resource: Mapping[str, Any]) -> Iterator[Any]:
    """Codes of contained Conditions the resource points at (`Encounter.diagnosis`,
    `reasonReference`): a reference to a stored Condition carries that Condition's own
    labels, a contained one only what is here."""
    contained = {
        f"#{item.get('id')}": item
        for item in resource.get("contained") or ()
        if isinstance(item, Mapping) and item.get("resourceType") == "Condition"
    }
    if not contained:
        return
    references = [d.get("condition") for d in resource.get("diagnosis") or ()]
    references += list(resource.get("reasonReference") or ())
    for reference in references:
        target = contained.get(str((reference or {}).get("reference")))
        if target is not None:
            yield target.get("code")


def _sender_labels(resource: Mapping[str, Any]) -> Iterator[Label]:
    codings = list((resource.get("meta") or {}).get("security") or ())
    if resource.get("resourceType") == "DocumentReference":
        for concept in resource.get("securityLabel") or ():
            codings += (concept or {}).get("coding") or ()
    for coding in codings:
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str):
            yield Label(system, code)


def labels_for(
    resource: Mapping[str, Any], *, part2_program: bool, lists: CodeLists | None = None
) -> frozenset[Label]:
    """The security labels of `resource`: the sender's own, the sensitivity its codes
    carry, and 42CFRPart2 + NORDSCLCD when it comes from a Part 2 program."""
    book = lists or shipped_lists()
    found = set(_sender_labels(resource))
    for concept in _concepts(resource):
        if not isinstance(concept, Mapping):
            continue
        for coding in concept.get("coding") or ():
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                found |= book.labels_of(system, code)
    if part2_program:
        found |= PART2_LABELS
    return frozenset(found)
