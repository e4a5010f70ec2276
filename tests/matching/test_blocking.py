"""Blocking keys: a true pair shares one under every mangling, common names stay small."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pytest

from demo.generator import generate
from exchange import curp as curp_rules
from exchange.matching.blocking import blocking_keys
from exchange.matching.features import features
from tests.matching.patients import patient


def _keys(resource: dict[str, Any]) -> frozenset[str]:
    return blocking_keys(features(resource))


MX = patient(
    family="Hernández López",
    fathers="Hernández",
    mothers="López",
    given=["Jesús"],
    gender="male",
    birth_date="1985-04-03",
    curp=curp_rules.derive(
        paternal="Hernández",
        maternal="López",
        given="Jesús",
        birth_date=dt.date(1985, 4, 3),
        sex="H",
        state="CH",
    ),
    phones=["+52 656 123 4567"],
    country="MX",
    pid="hgcj-1",
)


def test_the_keys_of_a_mexican_record() -> None:
    keys = _keys(MX)
    assert keys == {
        "bd:1985-04-03",
        "bds:1985-03-04",
        "ps:ERNANDES|1985M",
        "ps:LOPES|1985M",
        "md:04-03|ERNANDES",
        "md:04-03|LOPES",
        "gs:JESUS|ERNANDES",
        f"curp:{features(MX).curp}",
        "tel:+526561234567",
    }


@pytest.mark.parametrize(
    ("family", "given", "birth_date"),
    [
        ("Hernandez Lopez", ["Jesus"], "1985-04-03"),  # accents dropped
        ("Hernandez", ["Jesus"], "1985-04-03"),  # maternal dropped
        ("Hernandez-Lopez", ["Chuy"], "1985-04-03"),  # hyphen, nickname
        ("Lopez", ["Jesse", "Hernandez"], "1985-04-03"),  # misfiled, English form
        ("Hernandez", ["Jesse"], "1985-03-04"),  # month first
        ("Lopez", ["Chuy", "Hernandez"], "1985-03-04"),  # month first and misfiled
        ("Hernandes", ["Jesus"], "1985-04-13"),  # misspelt, wrong day
        ("Ernandez Lopes", ["Chuy"], "1985-11-30"),  # wrong birth date altogether
        ("Lopez", ["Jesse", "Hernandez"], "1986-04-03"),  # misfiled, wrong year
        ("Garcia", ["Jesus"], "1985-03-04"),  # another surname altogether, swapped
    ],
)
def test_a_us_record_of_the_same_person_shares_a_key(
    family: str, given: list[str], birth_date: str
) -> None:
    us = patient(family=family, given=given, gender="male", birth_date=birth_date, pid="u")
    assert _keys(MX) & _keys(us)


def test_a_day_month_swap_shares_the_swap_key_only() -> None:
    us = patient(family="Garcia", given=["Pedro"], gender="male", birth_date="1985-03-04")
    assert _keys(MX) & _keys(us) == {"bds:1985-03-04"}


def test_no_swap_key_when_the_day_cannot_be_a_month() -> None:
    keys = _keys(patient(family="Soto", given=["Ana"], birth_date="1985-04-13"))
    assert not any(k.startswith("bds:") for k in keys)
    same = _keys(patient(family="Soto", given=["Ana"], birth_date="1985-04-04"))
    assert not any(k.startswith("bds:") for k in same)


def test_married_de_garcia_shares_her_own_surname() -> None:
    mx = patient(
        family="Hernández López", given=["María"], gender="female", birth_date="1970-05-20"
    )
    us = patient(
        family="Hernandez de Garcia", given=["Maria"], gender="female", birth_date="1970-05-21"
    )
    assert _keys(mx) & _keys(us) == {"ps:ERNANDES|1970F"}


def test_a_wrong_birth_year_shares_the_month_day_key() -> None:
    us = patient(family="Hernandez", given=["Pedro"], gender="male", birth_date="1986-04-03")
    assert _keys(MX) & _keys(us) == {"md:04-03|ERNANDES"}


def test_identifiers_and_phones_are_keys() -> None:
    us = patient(family="Smith", given=["Joe"], ssn="123-45-6789", phones=["+52 656 123 4567"])
    keys = _keys(us)
    assert {"ssn:123456789", "tel:+526561234567"} <= keys
    assert _keys(MX) & keys == {"tel:+526561234567"}


def test_no_key_is_a_common_name_alone() -> None:
    keys = _keys(
        patient(family="García", given=["María"], gender="female", birth_date="1980-01-02")
    )
    # A lone María García has date-bound keys only.
    assert keys == {"bd:1980-01-02", "bds:1980-01-02", "ps:GARSIA|1980F", "md:01-02|GARSIA"}
    assert not _keys(patient(family="García", given=["María"]))


def test_every_demo_pair_shares_a_key_and_blocks_stay_small() -> None:
    scenario = generate(patients_per_hospital=800, seed=11)
    keys = {
        r["id"]: _keys(r)
        for records in scenario.records.values()
        for r in records
        if r["resourceType"] == "Patient"
    }
    assert all(keys[mx] & keys[us] for mx, us in scenario.shared)
    index: dict[str, list[str]] = defaultdict(list)
    for pid, record_keys in keys.items():
        if pid.startswith("hgcj"):
            for key in record_keys:
                index[key].append(pid)
    us_ids = [pid for pid in keys if pid.startswith("umcep")]
    candidates = sum(len({m for k in keys[u] for m in index.get(k, ())}) for u in us_ids)
    # Measured about 0.5 here and 6 against 20,000 Mexican records: linear in their number,
    # a few candidates per thousand stored patients.
    assert candidates / len(us_ids) < 1.0
