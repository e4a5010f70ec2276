"""`puente import`: idempotent, line-numbered errors, reference order, the good lines kept."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from demo.generator import generate, write_ndjson
from exchange import bulk
from puente.cli import app
from puente.db import session_factory
from tests.factories import bearer

runner = CliRunner()


def _register_systems() -> None:
    from exchange import service as exchange
    from puente.auth import service as auth

    with session_factory()() as session:
        for code, name, country in (("hgcj", "HGCJ", "MX"), ("umcep", "UMC", "US")):
            auth.add_system(session, code=code, name=name, country=country)
            exchange.register_hospital_organization(session, code=code, name=name, country=country)
        session.commit()


def _summary(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("read "))


def test_import_twice_leaves_one_copy(client: TestClient, tmp_path: Path) -> None:
    _register_systems()
    scenario = generate(patients_per_hospital=15, seed=5)
    folders = write_ndjson(scenario, tmp_path)
    count = len(scenario.records["hgcj"])
    first = runner.invoke(app, ["import", str(folders["hgcj"]), "--system", "hgcj", "--quiet"])
    assert first.exit_code == 0, first.output
    assert _summary(first.output) == (
        f"read {count}: created {count}, updated 0, unchanged 0, rejected 0"
    )
    again = runner.invoke(app, ["import", str(folders["hgcj"]), "--system", "hgcj", "--quiet"])
    assert _summary(again.output) == (
        f"read {count}: created 0, updated 0, unchanged {count}, rejected 0"
    )
    patients = client.get("/fhir/Patient", params={"_summary": "count"}, headers=bearer())
    assert patients.json()["total"] == 15
    # the other hospital sees none of it
    other = client.get(
        "/fhir/Patient", params={"_summary": "count"}, headers=bearer("system", "umcep")
    )
    assert other.json()["total"] == 0


def test_bad_lines_are_named_and_skipped(client: TestClient, tmp_path: Path) -> None:
    _register_systems()
    lines = [
        json.dumps({"resourceType": "Patient", "id": "hgcj-good-1", "gender": "female"}),
        "{not json",
        json.dumps({"resourceType": "Patient", "id": "umcep-theirs"}),
        json.dumps({"resourceType": "Patient", "id": "hgcj-bad", "birthDate": "soon"}),
        "",
        json.dumps({"resourceType": "Patient", "id": "hgcj-good-2", "gender": "male"}),
    ]
    source = tmp_path / "patients.ndjson"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    result = runner.invoke(app, ["import", str(source), "--system", "hgcj", "--quiet"])
    assert result.exit_code == 1
    assert _summary(result.output) == "read 5: created 2, updated 0, unchanged 0, rejected 3"
    assert "patients.ndjson:2:" in result.output
    assert "patients.ndjson:3:" in result.output
    assert "patients.ndjson:4:" in result.output
    assert "soon" not in result.output  # values are never echoed
    for res_id in ("hgcj-good-1", "hgcj-good-2"):
        assert client.get(f"/fhir/Patient/{res_id}", headers=bearer()).status_code == 200


def test_resources_without_ids_match_on_identifier(client: TestClient, tmp_path: Path) -> None:
    _register_systems()
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:puente:hgcj:expediente", "value": "HG0000042"}],
        "gender": "female",
    }
    source = tmp_path / "one.ndjson"
    source.write_text(json.dumps(patient) + "\n", "utf-8")
    for _ in range(2):
        result = runner.invoke(app, ["import", str(source), "--system", "hgcj", "--quiet"])
        assert result.exit_code == 0, result.output
    found = client.get(
        "/fhir/Patient",
        params={"identifier": "urn:puente:hgcj:expediente|HG0000042"},
        headers=bearer(),
    )
    assert found.json()["total"] == 1


def test_bundle_files_and_unknown_system(client: TestClient, tmp_path: Path) -> None:
    _register_systems()
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "hgcj-b1"}}],
    }
    source = tmp_path / "bundle.json"
    source.write_text(json.dumps(bundle), "utf-8")
    result = runner.invoke(app, ["import", str(source), "--system", "hgcj", "--quiet"])
    assert result.exit_code == 0, result.output
    assert client.get("/fhir/Patient/hgcj-b1", headers=bearer()).status_code == 200
    unknown = runner.invoke(app, ["import", str(source), "--system", "nope", "--quiet"])
    assert unknown.exit_code == 1


def test_reference_order_puts_patients_first(tmp_path: Path) -> None:
    (tmp_path / "a-observations.ndjson").write_text(
        json.dumps({"resourceType": "Observation", "id": "hgcj-o"}) + "\n", "utf-8"
    )
    (tmp_path / "z-patients.ndjson").write_text(
        json.dumps({"resourceType": "Patient", "id": "hgcj-p"}) + "\n", "utf-8"
    )
    order = [line.source for line in bulk.in_reference_order(bulk.files_in(tmp_path))]
    assert order == ["z-patients.ndjson", "a-observations.ndjson"]


def test_lines_that_meet_are_arranged_in_one_batch() -> None:
    identifier = [{"system": "urn:puente:hgcj:expediente", "value": "HG-1"}]
    texts = [
        json.dumps({"resourceType": "Patient", "id": "hgcj-a"}),
        json.dumps({"resourceType": "Patient", "id": "hgcj-b"}),
        json.dumps({"resourceType": "Encounter", "id": "hgcj-e", "status": "finished"}),
        json.dumps({"resourceType": "Patient", "id": "hgcj-a", "gender": "male"}),
        json.dumps({"resourceType": "Patient", "identifier": identifier}),
        json.dumps({"resourceType": "Patient", "id": "hgcj-c", "identifier": identifier}),
        "{not json",
    ]
    surveyed = [bulk.survey(text) for text in texts]
    assert surveyed[6] == (None, len(bulk.REFERENCE_ORDER), [])
    ranks = [rank for _, rank, _ in surveyed]
    touches = [touched for _, _, touched in surveyed]
    arranged = bulk.arrange(ranks, touches, 2, holders=[0, 1, 0, 1, 0, 1, 1])
    # patients: hgcj-a twice together, with the holder of its first line; the line without
    # an id with the one sharing its identifier; then encounters; then what is no resource
    assert arranged == [{0: [[0, 3], [4, 5]], 1: [[1]]}, {0: [[2]]}, {1: [[6]]}]


def _last_analyzed() -> dt.datetime | None:
    """When the least recently analysed of the tables an import fills was analysed."""
    with session_factory()() as session:
        found = session.execute(
            text(
                "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname IN "
                "('resource', 'resource_version', 'idx_token', 'idx_reference', 'mpi_block_key')"
            )
        ).all()
    assert len(found) == 5
    times = [when for _, when in found]
    return None if None in times else min(times)


def test_a_large_import_refreshes_the_planners_statistics(
    client: TestClient, tmp_path: Path, is_postgres: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(`client`: what the test commits is removed after it.)"""
    _register_systems()
    folders = write_ndjson(generate(patients_per_hospital=5, seed=3), tmp_path)
    monkeypatch.setattr(bulk, "ANALYZE_AFTER", 10**9)
    before = _last_analyzed() if is_postgres else None
    small = runner.invoke(app, ["import", str(folders["hgcj"]), "--system", "hgcj", "--quiet"])
    assert small.exit_code == 0, small.output
    if not is_postgres:
        assert bulk.after_load(10**9) is False  # SQLite keeps its own planner
        return
    assert _last_analyzed() == before
    monkeypatch.setattr(bulk, "ANALYZE_AFTER", 1)
    large = runner.invoke(app, ["import", str(folders["umcep"]), "--system", "umcep", "--quiet"])
    assert large.exit_code == 0, large.output
    after = _last_analyzed()
    assert after is not None
    assert before is None or after > before


def test_an_import_whose_statistics_refresh_fails_still_succeeds(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_systems()
    folders = write_ndjson(generate(patients_per_hospital=3, seed=4), tmp_path)

    def unreachable() -> bool:
        raise OperationalError("ANALYZE", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(bulk, "ANALYZE_AFTER", 1)
    monkeypatch.setattr(bulk, "refresh_statistics", unreachable)
    result = runner.invoke(app, ["import", str(folders["hgcj"]), "--system", "hgcj", "--quiet"])
    assert result.exit_code == 0, result.output
    assert _summary(result.output).endswith("rejected 0")
    stored = client.get("/fhir/Patient", params={"_summary": "count"}, headers=bearer())
    assert stored.json()["total"] == 3
