"""`puente matcher train|activate|list` as an operator runs them: a trained model is stored
inactive and scores nothing until activated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from exchange import store
from exchange.matching import model as model_module
from exchange.matching import versions
from exchange.matching.models import MatchModel
from puente.audit.models import AuditEntry
from puente.cli import app
from puente.db import session_factory
from tests.conftest import truncate_all

runner = CliRunner()


@pytest.fixture
def committed(engine: Engine) -> Iterator[None]:
    yield
    truncate_all(engine)


def person(res_id: str, family: str, birth: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": res_id,
        "name": [{"family": family, "given": ["Ana"]}],
        "gender": "female",
        "birthDate": birth,
    }


def stored_patients() -> None:
    with session_factory()() as session:
        for n, (family, birth) in enumerate(
            [("López", "1990-01-02"), ("Soto", "1971-03-04"), ("Lopez", "1990-01-02")]
        ):
            owner = "hgcj" if n % 2 == 0 else "umcep"
            store.put(
                session,
                owner=owner,
                owner_country="MX" if owner == "hgcj" else "US",
                resource=person(f"{owner}-{n}", family, birth),
            )
        session.commit()


def test_list_shows_the_shipped_model_active(committed: None) -> None:
    result = runner.invoke(app, ["matcher", "list"])
    assert result.exit_code == 0, result.output
    shipped = model_module.default().version
    assert shipped in result.stdout
    with session_factory()() as session:
        assert versions.active(session).version == shipped


def test_train_stores_an_inactive_model_until_activated(committed: None, tmp_path: Path) -> None:
    stored_patients()
    out = tmp_path / "model.json"
    trained = runner.invoke(app, ["matcher", "train", "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    document = json.loads(out.read_text())
    version = model_module.from_json(document).version
    assert version != model_module.default().version
    assert f"puente matcher activate {version}" in trained.stdout
    with session_factory()() as session:
        assert versions.active(session).version == model_module.default().version
        assert session.get(MatchModel, version) is not None
    activated = runner.invoke(app, ["matcher", "activate", version])
    assert activated.exit_code == 0, activated.output
    with session_factory()() as session:
        assert versions.active(session).version == version
        active = session.scalars(select(MatchModel.version).where(MatchModel.active)).all()
        assert list(active) == [version]
        audited = session.scalars(select(AuditEntry.subtype).where(AuditEntry.event_type == "mpi"))
        assert set(audited) == {"model-train", "model-activate"}
    listed = runner.invoke(app, ["matcher", "list"])
    line = next(line for line in listed.stdout.splitlines() if version in line)
    assert "yes" in line


def test_activating_an_unknown_version_fails(committed: None) -> None:
    result = runner.invoke(app, ["matcher", "activate", "no-such-version"])
    assert result.exit_code == 1
    assert "no-such-version" in result.stderr


def test_train_needs_patients(committed: None) -> None:
    result = runner.invoke(app, ["matcher", "train"])
    assert result.exit_code == 1
