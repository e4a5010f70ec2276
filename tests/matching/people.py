"""Hand-built match features for the scorer's tests (normalisation is tested on its own)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from exchange.matching.features import Features


def person(
    id: str = "hgcj-1",  # noqa: A002 - the Features field it fills
    *,
    given: Iterable[str] = ("JUAN",),
    canonical: Iterable[str] | None = None,
    paternal: str = "HERNANDEZ",
    maternal: str = "LOPEZ",
    surnames: Iterable[str] | None = None,
    phonetic: tuple[str, str] | None = None,
    born: str | None = "1985-04-12",
    sex: str = "M",
    curp: str = "",
    roots: Iterable[str] = (),
    ssn: str = "",
    phones: Iterable[str] = (),
    postal_code: str = "",
    city: str = "",
) -> Features:
    given = tuple(given)
    return Features(
        id=id,
        given=given,
        given_canonical=frozenset(canonical if canonical is not None else given),
        paternal=paternal,
        maternal=maternal,
        surnames=frozenset(
            surnames if surnames is not None else (s for s in (paternal, maternal) if s)
        ),
        phonetic_paternal=phonetic[0] if phonetic else paternal[:4],
        phonetic_maternal=phonetic[1] if phonetic else maternal[:4],
        phonetic_given=given[0][:4] if given else "",
        birth_date=dt.date.fromisoformat(born) if born else None,
        sex=sex,
        curp=curp,
        curp_roots=frozenset(roots),
        ssn=ssn,
        phones=frozenset(phones),
        postal_code=postal_code,
        city=city,
    )
