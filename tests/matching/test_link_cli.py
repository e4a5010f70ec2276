"""`puente link`: header and rows, grades written, --all, --explain, bad lines, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exchange.matching import linkage
from exchange.matching import model as matching_model
from exchange.matching.features import features
from exchange.matching.score import score
from puente.cli import app

runner = CliRunner()
CURP = "https://www.gob.mx/curp"
FATHERS = "http://hl7.org/fhir/StructureDefinition/humanname-fathers-family"
MOTHERS = "http://hl7.org/fhir/StructureDefinition/humanname-mothers-family"


def mx_patient(
    ident: str,
    given: list[str],
    paternal: str,
    maternal: str,
    born: str,
    sex: str,
    curp: str | None = None,
    phone: str | None = None,
) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": ident,
        "name": [
            {
                "family": f"{paternal} {maternal}",
                "_family": {
                    "extension": [
                        {"url": FATHERS, "valueString": paternal},
                        {"url": MOTHERS, "valueString": maternal},
                    ]
                },
                "given": given,
            }
        ],
        "birthDate": born,
        "gender": sex,
    }
    if curp:
        patient["identifier"] = [{"system": CURP, "value": curp}]
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone}]
    return patient


def us_patient(
    ident: str, given: list[str], family: str, born: str, sex: str, phone: str | None = None
) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": ident,
        "name": [{"family": family, "given": given}],
        "birthDate": born,
        "gender": sex,
    }
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone}]
    return patient


MX = [
    # the same woman on both sides: nickname, one surname, her Juárez phone
    mx_patient(
        "hgcj-1",
        ["María", "Guadalupe"],
        "Hernández",
        "Anchondo",
        "1985-04-12",
        "female",
        "HEAG850412MCHRND04",
        "+52 656 123 4567",
    ),
    # a man whose US record has his birth date typed month first
    mx_patient(
        "hgcj-2", ["Jesús"], "Zubiate", "Olivas", "1990-03-07", "male", phone="656 222 3344"
    ),
    # a woman nobody in El Paso resembles
    mx_patient("hgcj-3", ["Rosario"], "Quintana", "Ledezma", "1972-11-30", "female"),
]
US = [
    us_patient("umcep-1", ["Lupe"], "Hernandez", "1985-04-12", "female", "+52 656 123 4567"),
    us_patient("umcep-2", ["Jesse"], "Zubiate", "1990-07-03", "male", "+52 656 222 3344"),
    us_patient("umcep-3", ["John"], "Smith", "1972-11-30", "male"),
]


def _write(path: Path, patients: list[dict[str, Any]], extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    path.write_text("\n".join([json.dumps(p) for p in patients] + list(extra)) + "\n", "utf-8")
    return path


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as data:
        return list(csv.reader(data))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "mx.ndjson", MX), _write(tmp_path / "us.ndjson", US)


def _link(files: tuple[Path, Path], out: Path, *options: str) -> Any:
    return runner.invoke(
        app, ["link", str(files[0]), str(files[1]), "--out", str(out), "--quiet", *options]
    )


def test_links_certain_and_probable_pairs_with_the_match_probability(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "links.csv"
    result = _link(files, out, "--workers", "1")
    assert result.exit_code == 0, result.output
    rows = _read(out)
    assert rows[0] == ["mx_id", "us_id", "score", "grade"]
    pairs = {(r[0], r[1]): r for r in rows[1:]}
    assert set(pairs) == {("hgcj-1", "umcep-1"), ("hgcj-2", "umcep-2")}
    assert all(r[3] in ("certain", "probable") for r in rows[1:])
    # the same number $match reports for the pair
    expected = score(features(MX[0]), features(US[0]), matching_model.default())
    assert float(pairs[("hgcj-1", "umcep-1")][2]) == pytest.approx(expected.probability, abs=1e-6)
    assert pairs[("hgcj-1", "umcep-1")][3] == expected.grade
    assert "3 x 3 patients" in result.output


def test_two_processes_write_the_same_rows(files: tuple[Path, Path], tmp_path: Path) -> None:
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert _link(files, one, "--workers", "1", "--all").exit_code == 0
    assert _link(files, two, "--workers", "2", "--all").exit_code == 0
    assert _read(one) == _read(two)


def test_all_adds_possible_pairs_and_explain_adds_weights(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    plain, every = tmp_path / "plain.csv", tmp_path / "all.csv"
    _link(files, plain)
    assert _link(files, every, "--all", "--explain").exit_code == 0
    rows = _read(every)
    assert rows[0] == ["mx_id", "us_id", "score", "grade"] + [
        f"{field}_weight" for field in matching_model.FIELDS
    ] + ["contradictions"]
    # --all keeps every linked pair and may add possible ones, never certainly-not
    assert {tuple(r[:2]) for r in _read(plain)[1:]} <= {tuple(r[:2]) for r in rows[1:]}
    assert {r[3] for r in rows[1:]} <= {"certain", "probable", "possible"}
    first = next(r for r in rows[1:] if r[:2] == ["hgcj-1", "umcep-1"])
    weights = dict(zip(rows[0][4:12], map(float, first[4:12]), strict=True))
    assert weights["birth_date_weight"] > 0
    assert weights["ssn_weight"] == 0.0  # no SSN on either side: not compared


def test_swapped_birth_date_is_explained(files: tuple[Path, Path], tmp_path: Path) -> None:
    mx, us = linkage.normalise(list(files), workers=1)[0]
    found = linkage.link(mx, us, matching_model.default()).links
    jesus = next(link for link in found if link.mx_id == "hgcj-2")
    direct = score(mx[1], us[1], matching_model.default())
    assert (
        next(fw.level for fw in direct.explanation if fw.field == "birth_date")
        == "day-month swapped"
    )
    assert jesus.grade == direct.grade


def test_bad_lines_are_named_skipped_and_exit_1(tmp_path: Path) -> None:
    mx = _write(
        tmp_path / "mx.ndjson", MX, ['{"resourceType": "Observation", "id": "o1"}', "{not json"]
    )
    us = _write(
        tmp_path / "us.ndjson", US, ['{"resourceType": "Patient", "name": [{"family": "Secret"}]}']
    )
    out = tmp_path / "links.csv"
    result = runner.invoke(app, ["link", str(mx), str(us), "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    assert "mx.ndjson:4:" in result.output
    assert "mx.ndjson:5:" in result.output
    assert "us.ndjson:4:" in result.output
    assert "mx.ndjson:4: Expected a Patient resource but received Observation." in result.output
    assert "Secret" not in result.output  # values never echoed
    assert {tuple(r[:2]) for r in _read(out)[1:]} >= {("hgcj-1", "umcep-1")}  # the good ones linked


def test_usage_errors_exit_2(files: tuple[Path, Path], tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["link", str(tmp_path / "nope.ndjson"), str(files[1]), "--out", "x.csv"]
    )
    assert missing.exit_code == 2
    no_out = runner.invoke(app, ["link", str(files[0]), str(files[1])])
    assert no_out.exit_code == 2


def test_a_model_file_that_is_not_a_model_exits_1(files: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps({"comparisons": []}), "utf-8")
    result = _link(files, tmp_path / "links.csv", "--model", str(bad))
    assert result.exit_code == 1
    assert "not a Puente matching model" in result.output
    trained = tmp_path / "trained.json"
    trained.write_text(matching_model.dumps(matching_model.default()), "utf-8")
    assert _link(files, tmp_path / "links.csv", "--model", str(trained)).exit_code == 0


def test_bulk_linkage_gives_what_score_gives_for_every_candidate_pair() -> None:
    """The bulk path (caches, early exits, processes) agrees with `score` pair by pair."""
    from benchmarks.border_pairs import generate
    from exchange.matching.blocking import blocking_keys

    data = generate(300, 300, overlap=0.5, seed=11)
    mx = [features(p) for p in data.mx]
    us = [features(p) for p in data.us]
    model = matching_model.default()
    found = {
        (link.mx_id, link.us_id): link
        for link in linkage.link(mx, us, model, include_possible=True, workers=2).links
    }
    expected = {}
    for a in mx:
        keys = blocking_keys(a)
        for b in us:
            if keys & blocking_keys(b):
                result = score(a, b, model)
                if result.grade != "certainly-not":
                    expected[(a.id, b.id)] = result
    assert set(found) == set(expected)
    assert len(found) > 100
    for pair, result in expected.items():
        assert found[pair].grade == result.grade
        assert found[pair].probability == pytest.approx(result.probability, abs=1e-12)
        assert found[pair].field_weights == tuple(fw.weight for fw in result.explanation)
        assert found[pair].contradictions == result.contradictions


def test_parent_and_pool_share_the_ranges_and_keep_the_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With three processes (the parent and two forked workers taking ranges from both
    ends) and a given-name cache that keeps starting over, the links are the ones one
    process writes, in the same order."""
    from benchmarks.border_pairs import generate

    data = generate(400, 400, overlap=0.5, seed=5)
    mx = [features(p) for p in data.mx]
    us = [features(p) for p in data.us]
    model = matching_model.default()
    alone = linkage.link(mx, us, model, include_possible=True, workers=1)
    monkeypatch.setattr(linkage, "_CACHE_LIMIT", 3)
    shared = linkage.link(mx, us, model, include_possible=True, workers=3)
    assert len(alone.links) > 100
    assert shared.links == alone.links
    assert shared.candidate_pairs == alone.candidate_pairs
