"""CURP derivation (RENAPO's rules) from a name, birth date and sex."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.mx import curp as stdnum_curp

from exchange.curp import derive, root


@pytest.mark.parametrize(
    ("paternal", "maternal", "given", "born", "sex", "state", "expected_prefix"),
    [
        # José is skipped when a second given name follows: L from Luis.
        ("Ramírez", "Anchondo", "José Luis", dt.date(1985, 4, 12), "H", "CH", "RAAL850412HCHMNS"),
        # Ñ counts as X; the particles of "de la Cruz" are skipped.
        (
            "Núñez",
            "de la Cruz",
            "María Guadalupe",
            dt.date(2001, 1, 30),
            "M",
            "CH",
            "NUCG010130MCHXRD",
        ),
        # BACA is an inconvenient word: its second letter becomes X.
        ("Baca", "Cota", "Ana", dt.date(1990, 5, 5), "M", "CH", "BXCA900505MCHCTN"),
        # No maternal surname: X in both of its places.
        ("Gómez", None, "Pedro", dt.date(1970, 7, 7), "H", "NE", "GOXP700707HNEMXD"),
        # A lone José is the given name itself.
        ("López", "Soto", "José", dt.date(1999, 12, 31), "H", "CH", "LOSJ991231HCHPTS"),
    ],
)
def test_derive(
    paternal: str,
    maternal: str | None,
    given: str,
    born: dt.date,
    sex: str,
    state: str,
    expected_prefix: str,
) -> None:
    number = derive(
        paternal=paternal, maternal=maternal, given=given, birth_date=born, sex=sex, state=state
    )
    assert number.startswith(expected_prefix)
    assert stdnum_curp.is_valid(number)
    assert number[16] == ("0" if born.year < 2000 else "A")


def test_root_is_what_a_us_record_can_give() -> None:
    head, consonants = root(
        paternal="Ramirez",
        maternal="Anchondo",
        given="Jose Luis",
        birth_date=dt.date(1985, 4, 12),
        sex="H",
    )
    assert (head, consonants) == ("RAAL850412H", "MNS")
