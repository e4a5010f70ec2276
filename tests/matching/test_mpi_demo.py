"""The demo scenario through the MPI: the people registered on both sides are linked at
load, never two different people; the doubtful registrations wait for a steward."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import aliased

from demo import scenario
from demo.generator import CURP_SYSTEM, SSN_SYSTEM, generate
from exchange.matching.models import MatchLink
from exchange.models import StoredResource
from puente.db import session_factory
from puente.settings import get_settings

SYNTHETIC = 40


@pytest.fixture(autouse=True)
def demo_base_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PUENTE_BASE_URL", "http://127.0.0.1:8000")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def pairs(status: str) -> set[frozenset[str]]:
    left, right = aliased(StoredResource), aliased(StoredResource)
    with session_factory()() as session:
        rows = session.execute(
            select(left.res_id, right.res_id)
            .join(MatchLink, MatchLink.left_pk == left.pk)
            .join(right, right.pk == MatchLink.right_pk)
            .where(MatchLink.status == status)
        ).all()
    return {frozenset(row) for row in rows}


def test_the_demo_links_the_shared_patients_and_queues_the_doubtful(client: TestClient) -> None:
    out = io.StringIO()
    scenario.run(Console(file=out, width=400), synthetic_patients=SYNTHETIC)
    printed = out.getvalue()
    truth = {frozenset(pair) for pair in generate(patients_per_hospital=SYNTHETIC).shared}
    doubtful = {frozenset(str(r["id"]) for r in pair) for pair in scenario.DOUBTFUL}
    demo_pair = frozenset({str(scenario.HGCJ.patient["id"]), str(scenario.UMCEP.patient["id"])})
    ana = frozenset({str(scenario.ANA["id"]), str(scenario.ANA_EL_PASO["id"])})
    same_people = truth | doubtful | {demo_pair, ana}
    linked = pairs("linked")
    assert linked <= same_people  # never two different people linked automatically
    assert len(linked & truth) >= len(truth) * 0.6
    queued = pairs("review")
    assert queued & (doubtful | {demo_pair})
    assert "waiting for a consent officer's review" in printed
    assert "/mpi/reviews" in printed
    tokens = dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.splitlines()
        if line.startswith("export ")
    )
    shown = client.get("/mpi/reviews", headers={"Authorization": f"Bearer {tokens['OFFICER']}"})
    assert shown.status_code == 200
    assert shown.json()["total"] == len(queued)
    # The printed PIXm call answers: the demo registered each hospital's identifier systems.
    hgcj = {"Authorization": f"Bearer {tokens['HGCJ']}"}
    identifiers = scenario.HGCJ.patient["identifier"]
    assert isinstance(identifiers, list)
    curp = f"{CURP_SYSTEM}|{identifiers[0]['value']}"
    assert "$ihe-pix?sourceIdentifier=" in printed
    query = {"sourceIdentifier": curp, "targetSystem": SSN_SYSTEM}
    assert client.get("/fhir/Patient/$ihe-pix", params=query, headers=hgcj).status_code == 200
    unknown = {"sourceIdentifier": curp, "targetSystem": "urn:not-registered"}
    assert client.get("/fhir/Patient/$ihe-pix", params=unknown, headers=hgcj).status_code == 403
