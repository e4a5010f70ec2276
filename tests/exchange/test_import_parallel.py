"""`puente import --workers 2`: what one process stores, errors in line order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from demo.generator import generate, write_ndjson
from puente.cli import app
from tests.exchange.test_import import _register_systems, _summary
from tests.factories import bearer

runner = CliRunner()


@pytest.fixture(autouse=True)
def small_batches(is_postgres: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_postgres:
        pytest.skip("SQLite imports with one worker")
    monkeypatch.setattr("puente.cli.exchange.BATCH", 7)


def test_parallel_import_is_idempotent(client: TestClient, tmp_path: Path) -> None:
    _register_systems()
    scenario = generate(patients_per_hospital=15, seed=5)
    folder = write_ndjson(scenario, tmp_path)["hgcj"]
    count = len(scenario.records["hgcj"])
    command = ["import", str(folder), "--system", "hgcj", "--quiet", "--workers", "2"]
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert _summary(first.output) == (
        f"read {count}: created {count}, updated 0, unchanged 0, rejected 0"
    )
    again = runner.invoke(app, command)
    assert _summary(again.output) == (
        f"read {count}: created 0, updated 0, unchanged {count}, rejected 0"
    )
    patients = client.get("/fhir/Patient", params={"_summary": "count"}, headers=bearer())
    assert patients.json()["total"] == 15


@pytest.mark.parametrize("workers", ["1", "2"])
def test_errors_in_line_order(client: TestClient, tmp_path: Path, workers: str) -> None:
    _register_systems()
    lines = []
    for n in range(40):
        if n % 9 == 4:
            lines.append("{not json")
        elif n % 9 == 7:
            lines.append(json.dumps({"resourceType": "Patient", "id": f"umcep-{n}"}))
        else:
            lines.append(json.dumps({"resourceType": "Patient", "id": f"hgcj-{n}"}))
    lines.append(json.dumps({"resourceType": "Patient", "id": "hgcj-1", "gender": "male"}))
    source = tmp_path / "patients.ndjson"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    result = runner.invoke(
        app, ["import", str(source), "--system", "hgcj", "--quiet", "--workers", workers]
    )
    assert result.exit_code == 1
    assert _summary(result.output) == "read 41: created 32, updated 1, unchanged 0, rejected 8"
    named = [line.split(":")[1] for line in result.output.splitlines() if ".ndjson:" in line]
    # reference order, as in one process: refused patients, then lines of no known type
    assert named == [str(n + 1) for n in range(40) if n % 9 == 7] + [
        str(n + 1) for n in range(40) if n % 9 == 4
    ]
    patient = client.get("/fhir/Patient/hgcj-1", headers=bearer()).json()
    assert patient["gender"] == "male"
    assert patient["meta"]["versionId"] == "2"


def test_lines_that_meet_across_processes(client: TestClient, tmp_path: Path) -> None:
    """A resource written twice, and a line without an id matching another on identifier,
    each parsed by different processes: written in file order all the same."""
    _register_systems()
    identifier = {"system": "urn:puente:hgcj:expediente", "value": "HG-77"}
    lines = [json.dumps({"resourceType": "Patient", "id": f"hgcj-{n}"}) for n in range(40)]
    lines[0] = json.dumps({"resourceType": "Patient", "id": "hgcj-twice", "gender": "male"})
    lines[2] = json.dumps({"resourceType": "Patient", "id": "hgcj-twice", "gender": "female"})
    lines[5] = json.dumps({"resourceType": "Patient", "id": "hgcj-77", "identifier": [identifier]})
    lines[7] = json.dumps({"resourceType": "Patient", "identifier": [identifier], "active": True})
    source = tmp_path / "patients.ndjson"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    command = ["import", str(source), "--system", "hgcj", "--quiet", "--workers", "2"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert _summary(result.output) == "read 40: created 38, updated 1, unchanged 1, rejected 0"
    twice = client.get("/fhir/Patient/hgcj-twice", headers=bearer()).json()
    assert (twice["gender"], twice["meta"]["versionId"]) == ("female", "2")
    matched = client.get(
        "/fhir/Patient", params={"identifier": "urn:puente:hgcj:expediente|HG-77"}, headers=bearer()
    ).json()
    assert [entry["resource"]["id"] for entry in matched["entry"]] == ["hgcj-77"]
