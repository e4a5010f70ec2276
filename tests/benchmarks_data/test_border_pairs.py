"""The matcher's benchmark data: reproducible, valid R4, the truth it claims, hard negatives
that really look alike."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from stdnum.mx import curp

from benchmarks.border_pairs import ENGLISH_FORMS, KINDS, BorderData, generate, main
from demo.generator import CURP_SYSTEM, FATHERS, _plain
from exchange.validation import validate


@pytest.fixture(scope="module")
def data() -> BorderData:
    return generate(1500, 1200, overlap=0.5, seed=7)


def _by_id(patients: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in patients}


def _fathers(patient: dict[str, Any]) -> str:
    extensions = patient["name"][0]["_family"]["extension"]
    return str(next(e["valueString"] for e in extensions if e["url"] == FATHERS))


def _curp(patient: dict[str, Any]) -> str | None:
    return next((i["value"] for i in patient["identifier"] if i["system"] == CURP_SYSTEM), None)


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = generate(300, 250, overlap=0.4, seed=3)
    assert first == generate(300, 250, overlap=0.4, seed=3)
    assert first.mx != generate(300, 250, overlap=0.4, seed=4).mx


def test_sizes_and_truth_counts(data: BorderData) -> None:
    assert len(data.mx) == 1500
    assert len(data.us) == 1200
    assert len(data.truth) == 600  # half of the smaller side
    mx, us = _by_id(data.mx), _by_id(data.us)
    assert len(mx) == 1500
    assert len(us) == 1200
    assert len({m for m, _ in data.truth}) == len({u for _, u in data.truth}) == 600
    assert all(m in mx and u in us for m, u in data.truth)
    assert not set(data.truth) & {(m, u) for m, u, _ in data.hard_negatives}


def test_true_pairs_are_one_person(data: BorderData) -> None:
    mx, us = _by_id(data.mx), _by_id(data.us)
    swapped_or_slipped = 0
    for mx_id, us_id in data.truth:
        mexican, american = mx[mx_id], us[us_id]
        assert mexican["gender"] == american["gender"]
        born_mx = dt.date.fromisoformat(mexican["birthDate"])
        born_us = dt.date.fromisoformat(american["birthDate"])
        swapped_or_slipped += born_us != born_mx
        assert abs((born_us - born_mx).days) <= 366 or born_us.year == born_mx.year
    assert 0 < swapped_or_slipped < len(data.truth) * 0.1


def test_every_hard_negative_kind_is_there(data: BorderData) -> None:
    counts = {kind: sum(1 for *_, k in data.hard_negatives if k == kind) for kind in KINDS}
    assert all(n >= 5 for n in counts.values()), counts
    mx, us = _by_id(data.mx), _by_id(data.us)
    for mx_id, us_id, kind in data.hard_negatives:
        if kind == "namesake":
            assert mx[mx_id]["gender"] == us[us_id]["gender"] == "male"


def _mothers(patient: dict[str, Any]) -> str:
    extensions = patient["name"][0]["_family"]["extension"]
    return str(next(e["valueString"] for e in extensions if e["url"] != FATHERS))


def _home(patient: dict[str, Any]) -> tuple[str, str]:
    phone = patient["telecom"][0]["value"] if "telecom" in patient else ""
    return patient["address"][0]["line"][0], phone


def test_hard_negatives_look_alike_as_domain_md_says() -> None:
    # Relatives registered on both sides: their two Juárez records show what they share.
    data = generate(2500, 2500, overlap=0.8, seed=11)
    mx = _by_id(data.mx)
    mx_of = {u: m for m, u in data.truth}
    pairs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {k: [] for k in KINDS}
    for mx_id, us_id, kind in data.hard_negatives:
        if us_id in mx_of:
            pairs[kind].append((mx[mx_id], mx[mx_of[us_id]]))
    assert all(len(found) >= 5 for found in pairs.values()), {k: len(v) for k, v in pairs.items()}

    def share(kind: str, alike: Any) -> float:
        return sum(1 for a, b in pairs[kind] if alike(a, b)) / len(pairs[kind])

    for a, b in pairs["twin"]:
        assert a["birthDate"] == b["birthDate"]
        assert a["name"][0]["given"] != b["name"][0]["given"]
        assert (_curp(a) or "a") != (_curp(b) or "b")  # the homonym character differs
    assert share("twin", lambda a, b: a["name"][0]["family"] == b["name"][0]["family"]) > 0.9
    assert share("twin", lambda a, b: _home(a) == _home(b)) > 0.5
    assert 0.2 < share("twin", lambda a, b: a["gender"] == b["gender"]) < 1
    for a, b in pairs["sibling"]:
        assert a["birthDate"] != b["birthDate"]
    assert share("sibling", lambda a, b: a["name"][0]["family"] == b["name"][0]["family"]) > 0.9
    for a, b in pairs["namesake"]:
        gap = abs(int(a["birthDate"][:4]) - int(b["birthDate"][:4]))
        assert 19 <= gap <= 36
    assert share("namesake", lambda a, b: a["name"][0]["given"] == b["name"][0]["given"]) > 0.9
    assert share("namesake", lambda a, b: _fathers(a) == _fathers(b)) > 0.9
    assert share("namesake", lambda a, b: _mothers(a) != _mothers(b)) > 0.9
    for a, b in pairs["common"]:
        assert a["birthDate"] == b["birthDate"]
        assert _curp(a) != _curp(b) or _curp(a) is None
    assert share("common", lambda a, b: a["name"][0]["given"] == b["name"][0]["given"]) > 0.75
    assert share("common", lambda a, b: _mothers(a) != _mothers(b)) > 0.9


def test_mexican_records_keep_two_surnames_and_valid_curps(data: BorderData) -> None:
    with_curp = 0
    for patient in data.mx:
        assert _fathers(patient)
        number = _curp(patient)
        if number:
            with_curp += 1
            assert curp.is_valid(number)
            assert number[10] == ("H" if patient["gender"] == "male" else "M")
    assert 0.8 * len(data.mx) < with_curp < len(data.mx)  # some records lack it


def test_el_paso_writes_the_same_people_its_own_way(data: BorderData) -> None:
    mx, us = _by_id(data.mx), _by_id(data.us)
    seen = {"married": 0, "misfiled": 0, "hyphenated": 0, "english": 0, "dropped": 0}
    for mx_id, us_id in data.truth:
        mexican, american = mx[mx_id]["name"][0], us[us_id]["name"][0]
        paternal, maternal = _plain(_fathers(mx[mx_id])), _plain(_mothers(mx[mx_id]))
        given = [_plain(g) for g in mexican["given"]]
        family = american["family"]
        assert _plain(family) == family  # El Paso drops accents
        seen["married"] += family.startswith(f"{paternal} de ") and maternal not in family
        seen["misfiled"] += american["given"][-1] == paternal and family == maternal
        seen["hyphenated"] += family == f"{paternal}-{maternal}"
        forms = ENGLISH_FORMS.get(given[0].upper(), ())
        seen["english"] += american["given"][0] in forms and american["given"][0] != given[0]
        seen["dropped"] += len(given) > 1 and american["given"][0] == given[-1]
    assert all(n >= 3 for n in seen.values()), seen


def test_every_patient_is_valid_r4(data: BorderData) -> None:
    for patient in data.mx + data.us:
        validate(patient, "Patient")


def test_cli_writes_patients_truth_and_hard_negatives(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--mx", "200", "--us", "150", "--seed", "1"]) == 0
    mx = (tmp_path / "mx.ndjson").read_text("utf-8").splitlines()
    us = (tmp_path / "us.ndjson").read_text("utf-8").splitlines()
    assert len(mx) == 200
    assert len(us) == 150
    assert json.loads(mx[0])["resourceType"] == "Patient"
    with (tmp_path / "truth.csv").open(encoding="utf-8") as fh:
        truth = list(csv.reader(fh))
    assert truth[0] == ["mx_id", "us_id"]
    assert len(truth) - 1 == 60  # the default overlap, 0.4 of the smaller side
    data = generate(200, 150, overlap=0.4, seed=1)
    assert [tuple(row) for row in truth[1:]] == data.truth
    with (tmp_path / "hard_negatives.csv").open(encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["mx_id", "us_id", "kind"]
