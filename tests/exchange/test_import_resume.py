"""A `$import` that stopped part way is resumed under its id and goes on after its last
committed batch: final counts exact, no resource and no version written twice. A batch
that loses to concurrent writers is run again; if it keeps losing, its lines are
reported refused as `transient` and the job goes on."""

from __future__ import annotations

import collections
import json
import sqlite3
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from exchange import bulk, import_jobs
from exchange.models import ImportJob, ResourceVersion, StoredResource
from puente import db
from puente.cli import app as cli
from puente.db import session_factory
from tests.exchange.test_import_async import _kick_off, _ndjson, _records, register_systems
from tests.factories import bearer

BATCH = 7


def _status_path(response: Any) -> str:
    return str(response.headers["Content-Location"].removeprefix("http://testserver"))


def _job(job_id: str) -> ImportJob:
    with session_factory()() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        return job


def _stored() -> tuple[collections.Counter[str], int, int]:
    """The hospital's resources per type (its Organization aside), their versions, and
    the highest version number."""
    with session_factory()() as session:
        mine = (StoredResource.owner == "hgcj", StoredResource.res_type != "Organization")
        per_type = session.execute(
            select(StoredResource.res_type, func.count()).where(*mine).group_by("res_type")
        ).all()
        versions = session.scalar(
            select(func.count())
            .select_from(ResourceVersion)
            .where(ResourceVersion.owner == "hgcj", ResourceVersion.res_type != "Organization")
        )
        highest = session.scalar(select(func.max(StoredResource.version)).where(*mine))
    return collections.Counter(dict(per_type)), int(versions or 0), int(highest or 0)


def _dying_at(monkeypatch: pytest.MonkeyPatch, call: int, error: Exception) -> list[int]:
    """Make the `call`-th batch write all its lines and then raise `error` (the batch
    rolls back, as when a worker dies before its commit). Returns the calls made."""
    real = bulk.import_lines
    calls: list[int] = []

    def import_lines(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(*args, **kwargs)
        if len(calls) == call:
            raise error

    monkeypatch.setattr(bulk, "import_lines", import_lines)
    return calls


def _transient() -> OperationalError:
    return OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_jobs, "BATCH", BATCH)
    monkeypatch.setattr(db, "RETRY_PAUSE_SECONDS", 0.001)


def _failed_job(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[Any]]:
    """A job whose third batch died: two batches committed, the job failed."""
    register_systems()
    records = _records(6)
    assert len(records) > 4 * BATCH
    real = bulk.import_lines
    _dying_at(monkeypatch, 3, RuntimeError("worker lost"))
    started = _kick_off(client, _ndjson(records))
    assert started.status_code == 202
    monkeypatch.setattr(bulk, "import_lines", real)
    return _status_path(started), records


def test_a_failed_job_resumes_after_its_last_committed_batch(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    path, records = _failed_job(client, monkeypatch)
    job_id = path.rsplit("/", 1)[1]
    n = len(records)

    failed = client.get(path, headers=bearer())
    assert failed.status_code == 500
    assert failed.headers["X-Progress"] == f"{2 * BATCH} of {n} lines"
    issue = failed.json()["issue"][0]
    assert issue["code"] == "incomplete"
    assert issue["diagnostics"] == "error.import_stopped"
    assert f"{2 * BATCH} of {n}" in issue["details"]["text"]
    stopped = _job(job_id)
    assert (stopped.status, stopped.lines_done, stopped.created_count) == (
        import_jobs.FAILED,
        2 * BATCH,
        2 * BATCH,
    )
    assert _stored()[0].total() == 2 * BATCH  # the batch that died left nothing

    resumed = client.post(f"{path}/$resume", headers=bearer())
    assert resumed.status_code == 202, resumed.text
    assert resumed.headers["Content-Location"] == f"http://testserver{path}"
    assert resumed.json()["issue"][0]["severity"] == "information"

    manifest = client.get(path, headers=bearer())
    assert manifest.status_code == 200, manifest.text
    assert manifest.json()["extension"] == {
        "status": "completed",
        "counts": {
            "lines": n,
            "read": n,
            "created": n,
            "updated": 0,
            "unchanged": 0,
            "rejected": 0,
        },
    }
    per_type, versions, highest = _stored()
    assert per_type == collections.Counter(r["resourceType"] for r in records)
    assert (versions, highest) == (n, 1)  # no line written twice
    with session_factory()() as session:  # the copy is dropped once the job completes
        assert session.scalar(select(ImportJob.payload).where(ImportJob.id == job_id)) is None

    again = client.post(f"{path}/$resume", headers=bearer())
    assert again.status_code == 409
    assert again.json()["issue"][0]["diagnostics"] == "error.import_not_resumable"


def test_a_job_left_running_by_a_dead_worker_resumes(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    """A worker killed outright never marks its job failed: the job stays `running`."""
    path, records = _failed_job(client, monkeypatch)
    job_id = path.rsplit("/", 1)[1]
    with session_factory()() as session:
        session.execute(
            update(ImportJob).where(ImportJob.id == job_id).values(status=import_jobs.RUNNING)
        )
        session.commit()
    running = client.get(path, headers=bearer())
    assert running.status_code == 202
    assert running.headers["X-Progress"] == f"{2 * BATCH} of {len(records)} lines"

    assert client.post(f"{path}/$resume", headers=bearer()).status_code == 202
    counts = client.get(path, headers=bearer()).json()["extension"]["counts"]
    assert (counts["read"], counts["created"], counts["rejected"]) == (len(records),) * 2 + (0,)
    assert _stored()[1:] == (len(records), 1)


def test_resume_refusals(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    path, _ = _failed_job(client, monkeypatch)
    other = client.post(f"{path}/$resume", headers=bearer("system", "umcep"))
    assert other.status_code == 404  # another system's job is answered as absent
    unknown = client.post("/fhir/$import-status/nope/$resume", headers=bearer())
    assert unknown.status_code == 404
    assert client.delete(path, headers=bearer()).status_code == 202
    assert client.post(f"{path}/$resume", headers=bearer()).status_code == 404


def test_a_job_that_failed_without_its_payload_asks_for_a_re_post(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    path, _ = _failed_job(client, monkeypatch)
    job_id = path.rsplit("/", 1)[1]
    with session_factory()() as session:  # as jobs that failed before resuming existed
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(payload=None))
        session.commit()
    assert client.get(path, headers=bearer()).json()["issue"][0]["code"] == "exception"
    refused = client.post(f"{path}/$resume", headers={**bearer(), "Accept-Language": "es"})
    assert refused.status_code == 409
    assert refused.json()["issue"][0]["diagnostics"] == "error.import_payload_gone"
    assert "envíe de nuevo" in refused.json()["issue"][0]["details"]["text"]


def test_the_cli_resumes_a_failed_job(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    path, records = _failed_job(client, monkeypatch)
    job_id = path.rsplit("/", 1)[1]
    result = CliRunner().invoke(cli, ["import-jobs", "resume", job_id])
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[:2] == [job_id, "completed"]
    assert _job(job_id).created_count == len(records)
    assert _stored()[1:] == (len(records), 1)
    finished = CliRunner().invoke(cli, ["import-jobs", "resume", job_id])
    assert finished.exit_code == 1


def test_a_batch_that_lost_a_race_once_is_run_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    register_systems()
    records = _records(2)
    calls = _dying_at(monkeypatch, 2, _transient())
    started = _kick_off(client, _ndjson(records))
    batches = -(-len(records) // BATCH)
    assert len(calls) == batches + 1  # the second batch ran twice
    counts = client.get(_status_path(started), headers=bearer()).json()["extension"]["counts"]
    n = len(records)
    assert (counts["read"], counts["created"], counts["rejected"]) == (n, n, 0)
    assert _stored()[1:] == (n, 1)


def test_a_batch_that_keeps_losing_is_reported_transient_and_the_job_goes_on(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    register_systems()
    records = _records(2)
    real = bulk.import_lines
    calls: list[int] = []

    def import_lines(session: Any, caller: Any, lines: list[bulk.SourceLine], *a: Any) -> None:
        calls.append(1)
        real(session, caller, lines, *a)
        if lines[0] == first_of_second_batch:
            raise _transient()

    lines, _ = bulk.in_reference_order_parsed(import_jobs.source_lines(_ndjson(records)))
    first_of_second_batch = lines[BATCH]
    monkeypatch.setattr(bulk, "import_lines", import_lines)
    started = _kick_off(client, _ndjson(records))
    manifest = client.get(_status_path(started), headers=bearer()).json()
    n = len(records)
    assert manifest["extension"]["status"] == "completed"
    counts = manifest["extension"]["counts"]
    assert (counts["read"], counts["created"], counts["rejected"]) == (n, n - BATCH, BATCH)
    errors = client.get(
        manifest["error"][0]["url"].removeprefix("http://testserver"), headers=bearer()
    )
    outcomes = [json.loads(line) for line in errors.text.splitlines()]
    assert {o["issue"][0]["code"] for o in outcomes} == {"transient"}
    assert sorted(int(o["issue"][0]["diagnostics"].split(":")[0][5:]) for o in outcomes) == sorted(
        line.line for line in lines[BATCH : 2 * BATCH]
    )
    assert _stored()[1] == n - BATCH

    # Posting the same NDJSON again stores the refused lines and leaves the others.
    monkeypatch.setattr(bulk, "import_lines", real)
    counts = client.get(_status_path(_kick_off(client, _ndjson(records))), headers=bearer()).json()[
        "extension"
    ]["counts"]
    assert (counts["created"], counts["unchanged"], counts["rejected"]) == (BATCH, n - BATCH, 0)
