"""The linkage benchmark's arithmetic and mappings: figures a reader of its table trusts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.border_pairs import generate
from benchmarks.linkage_quality import (
    best_threshold,
    febrl_patient,
    flatten,
    main,
    precision_recall_f1,
    run_child,
)
from demo.generator import SSN_SYSTEM
from exchange.validation import validate


def test_precision_recall_f1_count_pairs_not_records() -> None:
    truth = {("m1", "u1"), ("m2", "u2"), ("m3", "u3"), ("m4", "u4")}
    found = {("m1", "u1"), ("m2", "u2"), ("m3", "u9")}
    precision, recall, f1 = precision_recall_f1(found, truth)
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 4)
    assert f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert precision_recall_f1(set(), truth) == (1.0, 0.0, 0.0)


def test_best_threshold_cuts_between_scores_only() -> None:
    truth = {("a", "1"), ("b", "2"), ("c", "3")}
    scored = [
        (0.99, ("a", "1")),
        (0.90, ("b", "2")),
        (0.90, ("x", "9")),  # tied with a true pair: both in or both out
        (0.60, ("c", "3")),
        (0.30, ("y", "8")),
    ]
    threshold, precision, recall, f1 = best_threshold(scored, truth)
    assert threshold == 0.60
    assert precision == pytest.approx(3 / 4)
    assert recall == 1.0
    assert f1 == pytest.approx(6 / 7)


def test_febrl_records_become_valid_patients_by_the_fixed_mapping() -> None:
    record = {
        "given_name": "michaela",
        "surname": "neumann",
        "street_number": "8",
        "address_1": "stanley street",
        "address_2": "miami",
        "suburb": "winston hills",
        "postcode": "4223",
        "state": "nsw",
        "date_of_birth": "19151111",
        "soc_sec_id": "5304218",
    }
    patient = validate(febrl_patient("rec-0-org", record), "Patient")
    assert patient["name"] == [{"use": "official", "family": "neumann", "given": ["michaela"]}]
    assert patient["birthDate"] == "1915-11-11"
    assert patient["identifier"] == [{"system": SSN_SYSTEM, "value": "005304218"}]
    assert patient["address"] == [
        {
            "line": ["8 stanley street", "miami"],
            "city": "winston hills",
            "state": "nsw",
            "postalCode": "4223",
            "country": "AU",
        }
    ]
    # FEBRL's corruptions: missing values (NaN) and dates that are no dates
    broken = {**record, "given_name": float("nan"), "date_of_birth": "19151311"}
    patient = validate(febrl_patient("rec-0-dup-0", broken), "Patient")
    assert "birthDate" not in patient
    assert "given" not in patient["name"][0]


def test_flatten_gives_splink_plain_columns() -> None:
    data = generate(40, 40, overlap=0.5, seed=2)
    row = flatten(data.mx[0])
    assert set(row) == {
        "unique_id",
        "first_name",
        "middle_names",
        "surname",
        "surname_first",
        "dob",
        "sex",
        "curp",
        "ssn",
        "phone",
        "postcode",
    }
    assert row["unique_id"] == data.mx[0]["id"]
    assert row["surname"] == row["surname"].lower()
    assert row["surname"].isascii()
    assert row["phone"].isdigit()
    assert row["phone"].startswith(("52", "1"))
    us = next(p for p in data.us if any(i["system"] == SSN_SYSTEM for i in p["identifier"]))
    assert len(flatten(us)["ssn"]) == 9


def test_a_child_is_measured_on_its_own(tmp_path: Path) -> None:
    run = run_child(
        [
            sys.executable,
            "-c",
            "import time; x = b'x' * (150 * 1024 * 1024); time.sleep(0.5); print('done')",
        ],
        tmp_path / "child.log",
    )
    assert run.returncode == 0
    assert run.peak_mb >= 150
    assert run.tree_mb >= 100  # sampled: the allocation may end between two samples
    assert run.cpu_seconds >= 0
    assert "done" in run.stderr
    failed = run_child([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "fail.log")
    assert failed.returncode == 3
    assert failed.peak_mb < 150  # not the earlier child's peak


def test_without_puente_link_it_says_so_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import benchmarks.linkage_quality as quality

    monkeypatch.setattr(quality, "PUENTE", tmp_path / "no-puente")
    code = main(["--size", "50", "--work", str(tmp_path), "--no-splink", "--no-febrl"])
    assert code == 2
    assert "link` is missing" in capsys.readouterr().err
