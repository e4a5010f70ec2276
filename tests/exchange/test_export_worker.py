"""A `$export` run by a real `puente worker`, killed part way: the files hold every
resource once, nothing lost, nothing twice.

Runs only with `PUENTE_TEST_BROKER_URL` (e.g. `redis://127.0.0.1:6379/15`). The data is
imported in-process; the kick-off then goes over HTTP with its task sent to Redis, a
worker starts writing pages and is SIGKILLed once some have committed; a second worker
gets the unacknowledged task from Redis (`acks_late`, the visibility timeout set short)
and goes on after the last committed page.
"""

from __future__ import annotations

import collections
import json
import time
from typing import Any

import pytest
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from demo.generator import generate
from exchange import export_run
from exchange.jobs import COMPLETED, RUNNING
from exchange.models import ExportJob, StoredResource
from puente import tasks
from puente.db import session_factory
from tests.exchange.test_import_async import register_systems
from tests.exchange.workers import BROKER_URL, WAIT_SECONDS, Workers
from tests.factories import bearer

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not BROKER_URL, reason="PUENTE_TEST_BROKER_URL is not set"),
]
HGCJ = bearer("system", "hgcj")
BASE = "http://testserver"


def _job(job_id: str) -> ExportJob:
    with session_factory()() as session:
        job = session.get(ExportJob, job_id)
        assert job is not None
        return job


def _import(client: TestClient, records: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    headers = {**HGCJ, "Prefer": "respond-async", "Content-Type": "application/fhir+ndjson"}
    response = client.post("/fhir/$import", content=body, headers=headers)
    assert response.status_code == 202, response.text


def _stored() -> collections.Counter[str]:
    with session_factory()() as session:
        rows = session.execute(
            select(StoredResource.res_type, func.count())
            .where(StoredResource.owner == "hgcj", StoredResource.deleted.is_(False))
            .group_by(StoredResource.res_type)
        ).all()
    return collections.Counter(dict(rows))


def test_a_killed_worker_leaves_every_resource_in_the_files_once(
    client: TestClient, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_systems()
    _import(client, generate(patients_per_hospital=600, seed=3).records["hgcj"])
    expected = _stored()
    del expected["Organization"]  # directory data: every hospital's is exported
    assert sum(expected.values()) > 6 * export_run.PAGE

    sender = Celery("puente-test", broker=BROKER_URL)
    sender.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    monkeypatch.setattr(
        tasks, "_send", lambda name, args: sender.send_task(name, args=args) and None
    )
    first = workers.start()
    started = client.get(
        "/fhir/$export?_type=" + ",".join(sorted(expected)),
        headers={**HGCJ, "Prefer": "respond-async"},
    )
    sender.close()
    assert started.status_code == 202, started.text
    status_path = started.headers["Content-Location"].removeprefix(BASE)
    job_id = status_path.rsplit("/", 1)[1]
    polled = client.get(status_path, headers=HGCJ)
    assert polled.status_code == 202
    assert polled.headers["Retry-After"]
    assert "resources written" in polled.headers["X-Progress"]

    deadline = time.monotonic() + WAIT_SECONDS
    workers.kill_once(first, lambda: _job(job_id).resources_done > 0, deadline)
    at_kill = _job(job_id)
    assert at_kill.status == RUNNING, workers.tail()
    assert 0 < at_kill.resources_done < sum(expected.values())

    workers.start()
    while _job(job_id).status != COMPLETED:
        assert time.monotonic() < deadline, workers.tail()
        time.sleep(0.2)

    manifest = client.get(status_path, headers=HGCJ).json()
    exported: collections.Counter[str] = collections.Counter()
    ids: set[str] = set()
    for output in manifest["output"]:
        response = client.get(output["url"].removeprefix(BASE), headers=HGCJ)
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.text.splitlines() if line]
        assert len(lines) == output["count"]
        for resource in lines:
            exported[resource["resourceType"]] += 1
            ids.add(f"{resource['resourceType']}/{resource['id']}")
    assert exported == expected
    assert len(ids) == sum(expected.values())  # no resource written twice
