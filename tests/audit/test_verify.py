"""`verify` and `puente audit verify` catch every kind of tampering, and pass an intact chain.

Each case commits a sealed chain of five entries (ids far above the sealing window, so an
entry slipped in below it is outside the window), tampers with the committed rows the way
someone with database access would, then checks both the function and the CLI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from puente.audit.sealer import ID_WINDOW
from puente.audit.tasks import seal_backlog
from puente.audit.verify import verify
from tests.audit.conftest import run_cli, tampering
from tests.factories import audit_entry

BASE = 5 * ID_WINDOW  # entry ids BASE+1 .. BASE+5 sit at positions 1 .. 5
EPOCH = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def _sealed_chain(session: Session) -> None:
    for n in range(1, 6):
        audit_entry(
            session,
            audit_id=BASE + n,
            recorded_at=EPOCH + dt.timedelta(seconds=n),
            patients=(f"Patient/p{n}",),
        )
    session.commit()
    assert seal_backlog() == 5


def _swap_entry_ids(conn: Connection, first: int, second: int) -> None:
    for old, new in ((first, -1), (second, first), (-1, second)):
        conn.execute(
            text("UPDATE audit_entry SET id = :new WHERE id = :old"), {"new": new, "old": old}
        )


def _remove_chain_row_and_renumber(conn: Connection, position: int) -> None:
    conn.execute(text("DELETE FROM audit_chain WHERE position = :p"), {"p": position})
    conn.execute(
        text("UPDATE audit_chain SET position = -position WHERE position > :p"), {"p": position}
    )
    conn.execute(text("UPDATE audit_chain SET position = -position - 1 WHERE position < 0"))


def _swap_positions(conn: Connection, first: int, second: int) -> None:
    for old, new in ((first, -1), (second, first), (-1, second)):
        conn.execute(
            text("UPDATE audit_chain SET position = :new WHERE position = :old"),
            {"new": new, "old": old},
        )


def _forge_chain_row(conn: Connection) -> None:
    head = conn.execute(text("SELECT hash FROM audit_chain WHERE position = 5")).scalar_one()
    conn.execute(
        text(
            "INSERT INTO audit_chain (position, audit_id, prev_hash, hash, sealed_at) "
            "VALUES (6, :id, :prev, :hash, :at)"
        ),
        {"id": BASE + 9, "prev": head, "hash": "f" * 64, "at": EPOCH},
    )


@dataclass(frozen=True)
class Case:
    name: str
    tamper: Callable[[Connection], object]
    reason: str
    position: int | None
    audit_id: int | None
    foreign_keys: bool = False
    forged_entry: int | None = None  # an entry added directly (unsealed) first
    forged_at: dt.datetime = EPOCH


def _sql(statement: str, **params: object) -> Callable[[Connection], object]:
    return lambda conn: conn.execute(text(statement), params)


def _remove_entry_with_its_chain_row(conn: Connection, position: int, audit_id: int) -> None:
    conn.execute(text("DELETE FROM audit_chain WHERE position = :p"), {"p": position})
    conn.execute(text("DELETE FROM audit_reference WHERE audit_id = :id"), {"id": audit_id})
    conn.execute(text("DELETE FROM audit_entry WHERE id = :id"), {"id": audit_id})


CASES = [
    Case("altered agent", _sql("UPDATE audit_entry SET agent = 'x' WHERE id = :id", id=BASE + 3),
         "hash-mismatch", 3, BASE + 3),
    Case("altered outcome", _sql("UPDATE audit_entry SET outcome = 4 WHERE id = :id", id=BASE + 2),
         "hash-mismatch", 2, BASE + 2),
    Case("altered patients list",
         _sql("UPDATE audit_entry SET patients = '[]' WHERE id = :id", id=BASE + 4),
         "hash-mismatch", 4, BASE + 4),
    Case("altered stored hash",
         _sql("UPDATE audit_chain SET hash = :h WHERE position = 2", h="0" * 64),
         "hash-mismatch", 2, BASE + 2),
    Case("reference row removed",
         _sql("DELETE FROM audit_reference WHERE audit_id = :id AND kind = 'patient'", id=BASE + 2),
         "references-mismatch", 2, BASE + 2),
    Case("reference row added",
         _sql("INSERT INTO audit_reference (audit_id, reference, kind) "
              "VALUES (:id, 'Patient/someone-else', 'patient')", id=BASE + 1),
         "references-mismatch", 1, BASE + 1),
    Case("entry removed, chain row left",
         _sql("DELETE FROM audit_entry WHERE id = :id", id=BASE + 3),
         "entry-missing", 3, BASE + 3, foreign_keys=True),
    Case("entry and chain row removed",
         lambda c: _remove_entry_with_its_chain_row(c, 3, BASE + 3),
         "position-gap", 4, BASE + 4),
    Case("chain row removed and positions closed up",
         lambda c: _remove_chain_row_and_renumber(c, 3),
         "prev-hash-mismatch", 3, BASE + 4),
    Case("entry inserted below the window", lambda c: None,
         "unsealed-outside-window", None, 7, forged_entry=7),
    Case("forged chain row", _forge_chain_row, "hash-mismatch", 6, BASE + 9,
         forged_entry=BASE + 9),
    Case("two entries' ids swapped", lambda c: _swap_entry_ids(c, BASE + 2, BASE + 4),
         "hash-mismatch", 2, BASE + 2, foreign_keys=True),
    Case("two chain positions swapped", lambda c: _swap_positions(c, 2, 4),
         "prev-hash-mismatch", 2, BASE + 4),
]  # fmt: skip


def test_intact_chain_verifies(committed: Session) -> None:
    _sealed_chain(committed)
    audit_entry(committed)  # a fresh row the sealer has not reached yet
    committed.commit()
    report = verify(committed)
    assert report.ok
    assert (report.checked, report.head_position, report.pending) == (5, 5, 1)
    code, output = run_cli("audit", "verify")
    assert code == 0, output
    assert "audit chain intact: 5 rows checked" in output
    assert "1 recent rows not sealed yet" in output


def test_empty_trail_verifies(committed: Session) -> None:
    code, output = run_cli("audit", "verify")
    assert code == 0
    assert "0 rows checked" in output


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tampering_is_detected(committed: Session, engine: Engine, case: Case) -> None:
    _sealed_chain(committed)
    if case.forged_entry is not None:
        audit_entry(committed, audit_id=case.forged_entry, recorded_at=case.forged_at)
        committed.commit()
    with tampering(engine, foreign_keys=case.foreign_keys) as conn:
        case.tamper(conn)
    committed.expire_all()
    report = verify(committed)
    assert report.problem is not None
    assert (report.problem.reason, report.problem.position, report.problem.audit_id) == (
        case.reason,
        case.position,
        case.audit_id,
    )
    code, output = run_cli("audit", "verify")
    assert code == 1
    assert f"audit id {case.audit_id}" in output
    if case.position is not None:
        assert f"position {case.position}" in output
    assert case.reason in output
    assert "Patient/" not in output  # names the row, never its content


def test_cli_seal_chains_what_is_pending(committed: Session) -> None:
    for _ in range(3):
        audit_entry(committed)
    committed.commit()
    code, output = run_cli("audit", "seal")
    assert (code, output.strip()) == (0, "sealed 3 audit rows")
    code, output = run_cli("audit", "seal")
    assert (code, output.strip()) == (0, "sealed 0 audit rows")
