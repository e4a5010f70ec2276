"""`puente matcher activate VERSION` scores the existing pairs again with the new model:
grades follow it, a certain link it doubts goes to review (never unlinked unseen),
stewards' decisions stand, and the history names the model that rescored."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from exchange import store
from exchange.matching import model as model_module
from exchange.matching import review, tasks, versions
from exchange.matching.models import MatchLink, MatchLinkHistory
from exchange.matching.tasks import match_task
from exchange.models import StoredResource
from puente.cli import app
from puente.db import session_factory
from tests.conftest import truncate_all
from tests.matching.mpi_fakes import Grades, install
from tests.matching.test_mpi_index import officer, person

runner = CliRunner()
NEW = "rescore-test-2"
PAIRS = range(1, 9)


@pytest.fixture
def committed(engine: Engine) -> Iterator[None]:
    yield
    truncate_all(engine)


@pytest.fixture
def grades(monkeypatch: pytest.MonkeyPatch) -> Grades:
    return install(monkeypatch)


def pk(session: Session, res_id: str) -> int:
    found = session.scalar(select(StoredResource.pk).where(StoredResource.res_id == res_id))
    assert found is not None
    return found


def pair(session: Session, n: int) -> MatchLink | None:
    a, b = pk(session, f"hgcj-{n}"), pk(session, f"umcep-{n}")
    return session.scalars(
        select(MatchLink).where(MatchLink.left_pk == min(a, b), MatchLink.right_pk == max(a, b))
    ).one_or_none()


def state(n: int) -> tuple[str, str, str] | None:
    with session_factory()() as session:
        found = pair(session, n)
        return None if found is None else (found.status, found.grade, found.decided_by)


def history(n: int) -> list[tuple[str, str, str]]:
    with session_factory()() as session:
        found = pair(session, n)
        assert found is not None
        rows = session.execute(
            select(MatchLinkHistory.status, MatchLinkHistory.reason, MatchLinkHistory.model_version)
            .where(MatchLinkHistory.link_id == found.id)
            .order_by(MatchLinkHistory.id)
        ).all()
    return [(status, reason, version) for status, reason, version in rows]


def loaded(grades: Grades, old: dict[int, str]) -> str:
    """Eight people registered at both hospitals, matched by the shipped model with the
    grades `old`; returns that model's version. A new model is stored, not active."""
    with session_factory()() as session:
        for n in PAIRS:
            for owner, country in (("hgcj", "MX"), ("umcep", "US")):
                store.put(
                    session, owner=owner, owner_country=country, resource=person(f"{owner}-{n}")
                )
        shipped = versions.active(session).version
        versions.store(session, dataclasses.replace(model_module.default(), version=NEW))
        pks = [pk(session, f"{o}-{n}") for n in PAIRS for o in ("hgcj", "umcep")]
        session.commit()
    for n, grade in old.items():
        grades.set(f"hgcj-{n}", f"umcep-{n}", grade)
    match_task(pks)
    return shipped


def born(n: int) -> str:
    return f"{1950 + n % 40}-{1 + n % 12:02d}-{1 + n % 28:02d}"


def decide(n: int, how: Any) -> None:
    with session_factory()() as session:
        found = pair(session, n)
        assert found is not None
        how(session, officer(), link_id=found.id)
        session.commit()


def test_activation_rescores_the_pairs_and_stewards_decisions_stand(
    committed: None, grades: Grades
) -> None:
    old = {1: "certain", 2: "certain", 3: "probable", 4: "probable", 5: "probable"}
    shipped = loaded(grades, {**old, 6: "possible", 8: "certain"})
    decide(4, review.reject)
    decide(5, review.accept)
    assert state(1) == ("linked", "certain", "matcher")
    assert state(7) is None  # certainly not the same person: no pair kept
    before = {n: history(n) for n in (4, 5)}
    new = {1: "probable", 2: "certainly-not", 3: "certain", 4: "certain", 5: "certainly-not"}
    for n, grade in {**new, 6: "probable", 7: "certain", 8: "certain"}.items():
        grades.set(f"hgcj-{n}", f"umcep-{n}", grade)

    result = runner.invoke(app, ["matcher", "activate", NEW])

    assert result.exit_code == 0, result.output
    assert "rescored the pairs of 16 records" in result.stdout
    # A certain link the new model doubts goes to a steward, whatever it now says.
    assert state(1) == ("review", "probable", "matcher")
    assert state(2) == ("review", "certainly-not", "matcher")
    assert history(2)[-1] == ("review", "rescore", NEW)
    # Pending and candidate pairs follow the new grades; a new certain pair is linked.
    assert state(3) == ("linked", "certain", "matcher")
    assert state(6) == ("review", "probable", "matcher")
    assert state(7) == ("linked", "certain", "matcher")
    assert history(7) == [("linked", "rescore", NEW)]
    # A link the new model confirms keeps its status; its history names the new model.
    assert state(8) == ("linked", "certain", "matcher")
    assert history(8) == [("linked", "scored", shipped), ("linked", "rescore", NEW)]
    # Stewards' decisions stand, untouched.
    assert state(4) == ("rejected", "probable", "consent-officer:officer@hgcj")
    assert state(5) == ("linked", "probable", "consent-officer:officer@hgcj")
    assert {n: history(n) for n in (4, 5)} == before
    assert "linked 3" in result.stdout
    assert "review 3" in result.stdout


def test_activating_again_changes_nothing(committed: None, grades: Grades) -> None:
    loaded(grades, {1: "certain", 2: "probable"})
    grades.set("hgcj-1", "umcep-1", "probable")
    assert runner.invoke(app, ["matcher", "activate", NEW]).exit_code == 0
    with session_factory()() as session:
        rows = session.scalar(select(func.count()).select_from(MatchLinkHistory))
    again = runner.invoke(app, ["matcher", "activate", NEW])
    assert again.exit_code == 0, again.output
    with session_factory()() as session:
        assert session.scalar(select(func.count()).select_from(MatchLinkHistory)) == rows
    assert state(1) == ("review", "probable", "matcher")


def test_the_rescore_reads_in_batches_not_per_pair(
    committed: None, grades: Grades, engine: Engine
) -> None:
    """The statements a chunk sends do not grow with its pairs: 8 pairs and 64 cost the
    same number (a per-pair lookup would add 56 or more)."""

    def statements(people: int) -> int:
        truncate_all(engine)
        with session_factory()() as session:
            for n in range(people):
                for owner, country in (("hgcj", "MX"), ("umcep", "US")):
                    store.put(
                        session,
                        owner=owner,
                        owner_country=country,
                        resource=person(f"{owner}-{n}", birthDate=born(n)),
                    )
            versions.active(session)
            versions.store(session, dataclasses.replace(model_module.default(), version=NEW))
            versions.activate(session, version=NEW)
            session.commit()  # matched at once (no broker): all certainly not, no pair kept
        for n in range(people):
            grades.set(f"hgcj-{n}", f"umcep-{n}", "certain")
        sent: list[str] = []

        def count(*args: Any) -> None:
            sent.append(str(args[2]))

        event.listen(engine, "before_cursor_execute", count)
        try:
            tasks.rescore_all()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(sent)

    few = statements(8)
    assert state(7) == ("linked", "certain", "matcher")
    many = statements(64)
    assert state(63) == ("linked", "certain", "matcher")
    assert many <= few + 4, (few, many)
