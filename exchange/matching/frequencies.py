"""How common a name is: term frequencies for the scorer's name adjustment (pure, cached).

A shared `HERNANDEZ` says less than a shared `ANCHONDO`. Splink's term-frequency
adjustment replaces a level's average u by the frequency of the agreeing value; the
frequencies here come from the US Census Bureau's Hispanic surname (2010) and first-name
(2020) files (data/README.md), the population that crosses between Juárez and El Paso.
A name the files do not list gets no adjustment (None): its frequency is unknown, and
guessing "rare" would overstate common non-Hispanic names such as SMITH.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

SURNAMES_FILE = "census2010_hispanic_surnames.csv"
GIVEN_FILE = "census2020_hispanic_first_names.csv"


def _load(filename: str) -> dict[str, float]:
    text = resources.files("exchange.matching").joinpath("data", filename).read_text("utf-8")
    rows = list(csv.reader(text.splitlines()))[1:]
    counts = {row[0].strip().upper(): int(row[1]) for row in rows if len(row) >= 2}
    total = sum(counts.values())
    return {name: count / total for name, count in counts.items()}


@cache
def surnames() -> dict[str, float]:
    """Folded surname -> share of the people the Census file counts."""
    return _load(SURNAMES_FILE)


@cache
def given_names() -> dict[str, float]:
    """Folded first name -> share of the people the Census file counts."""
    return _load(GIVEN_FILE)


def surname(name: str) -> float | None:
    return surnames().get(name)


def given(name: str) -> float | None:
    return given_names().get(name)
