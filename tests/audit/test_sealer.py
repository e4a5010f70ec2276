"""The sealer: contiguous positions, linked hashes, idempotent, never forked."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.audit import service
from puente.audit.canonical import CANONICAL_FIELDS, GENESIS_HASH, canonical, chain_hash
from puente.audit.models import AuditChain, AuditEntry
from puente.audit.sealer import ID_WINDOW, seal
from puente.audit.tasks import seal_backlog
from puente.audit.verify import verify
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from puente.settings import get_settings
from puente.tasks import pending
from tests.factories import audit_entry


def _chain(session: Session) -> list[AuditChain]:
    return list(session.scalars(select(AuditChain).order_by(AuditChain.position)))


def test_canonical_form_covers_every_column_of_the_entry() -> None:
    assert set(CANONICAL_FIELDS) == {c.name for c in AuditEntry.__table__.columns}


def test_canonical_form_is_deterministic_json() -> None:
    row: dict[str, object] = dict.fromkeys(CANONICAL_FIELDS)
    row |= {
        "id": 7,
        "recorded_at": dt.datetime(2026, 11, 24, 18, 30, 5, 12, tzinfo=dt.UTC),
        "entities": ["Organization/hgcj"],
        "patients": [],
        "agent": "hgcj-client",
    }
    text = canonical(row).decode()
    assert text.startswith('{"action":null,"agent":"hgcj-client","agent_role":null,')
    assert '"recorded_at":"2026-11-24T18:30:05.000012Z"' in text
    assert " " not in text
    assert chain_hash(GENESIS_HASH, row) == chain_hash(GENESIS_HASH, dict(reversed(row.items())))
    assert chain_hash(GENESIS_HASH, row) != chain_hash(GENESIS_HASH, row | {"id": 8})


def test_seal_chains_in_id_order_with_linked_hashes(db: Session) -> None:
    entries = [audit_entry(db) for _ in range(4)]
    assert seal(db) == 4
    chain = _chain(db)
    assert [c.position for c in chain] == [1, 2, 3, 4]
    assert [c.audit_id for c in chain] == [e.id for e in entries]
    assert chain[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash
    table = AuditEntry.__table__
    for link in chain:
        row = db.execute(select(table).where(table.c.id == link.audit_id)).mappings().one()
        assert link.hash == chain_hash(link.prev_hash, row)


def test_seal_is_idempotent_and_appends_new_rows_after_the_head(db: Session) -> None:
    audit_entry(db)
    audit_entry(db)
    assert seal(db) == 2
    assert seal(db) == 0
    newest = audit_entry(db)
    assert seal(db) == 1
    chain = _chain(db)
    assert [c.position for c in chain] == [1, 2, 3]
    assert chain[-1].audit_id == newest.id
    assert chain[-1].prev_hash == chain[-2].hash
    assert verify(db).ok


def test_seal_works_in_batches(db: Session) -> None:
    for _ in range(5):
        audit_entry(db)
    assert seal(db, batch_size=2) == 2
    assert seal(db, batch_size=2) == 2
    assert seal(db, batch_size=2) == 1
    assert [c.position for c in _chain(db)] == [1, 2, 3, 4, 5]


def test_late_commit_with_a_lower_id_gets_the_next_position(db: Session) -> None:
    base = 3 * ID_WINDOW
    audit_entry(db, audit_id=base + 10)
    assert seal(db) == 1
    late = audit_entry(db, audit_id=base + 5)  # its transaction committed after the seal
    assert seal(db) == 1
    chain = _chain(db)
    assert [(c.position, c.audit_id) for c in chain] == [(1, base + 10), (2, late.id)]
    report = verify(db)
    assert report.ok
    assert report.checked == 2


def test_a_run_from_an_id_leaves_late_commits_to_the_next_sweep(db: Session) -> None:
    base = 3 * ID_WINDOW
    audit_entry(db, audit_id=base + 10)
    assert seal(db) == 1
    audit_entry(db, audit_id=base + 5)  # committed late, below the chain's highest id
    newest = audit_entry(db, audit_id=base + 11)
    assert seal(db, since_id=newest.id) == 1
    assert verify(db).pending == 1
    assert seal(db) == 1  # the sweep
    assert [c.audit_id for c in _chain(db)] == [base + 10, base + 11, base + 5]
    assert verify(db).ok


def test_entries_below_the_window_are_never_sealed(db: Session) -> None:
    base = 3 * ID_WINDOW
    audit_entry(db, audit_id=base)
    assert seal(db) == 1
    audit_entry(db, audit_id=base - ID_WINDOW - 1)
    assert seal(db) == 0
    report = verify(db)
    assert report.problem is not None
    assert report.problem.reason == "unsealed-outside-window"


def test_two_sealers_at_once_do_not_fork_the_chain(committed: Session) -> None:
    from puente.db import session_factory

    for _ in range(200):
        audit_entry(committed)
    committed.commit()
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            with session_factory()() as session:
                results.append(seal(session, batch_size=150))
                session.commit()
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert seal_backlog() == 200 - sum(results)
    chain = _chain(committed)
    assert [c.position for c in chain] == list(range(1, 201))
    assert len({c.audit_id for c in chain}) == 200
    assert verify(committed).ok


def test_embedded_mode_seals_once_per_transaction_after_commit(committed: Session) -> None:
    caller = Caller("hgcj-client", Role.SYSTEM, "hgcj", "MX")
    first = service.append(committed, event_type="rest", subtype="read", action="R", caller=caller)
    for _ in range(2):
        service.append(committed, event_type="rest", subtype="read", action="R", caller=caller)
    assert pending(committed) == [("puente.audit.seal", (first.id,))]
    committed.commit()
    chain = _chain(committed)
    assert [c.position for c in chain] == [1, 2, 3]


def test_rolled_back_rows_send_no_seal(committed: Session) -> None:
    caller = Caller("hgcj-client", Role.SYSTEM, "hgcj", "MX")
    service.append(committed, event_type="rest", subtype="read", action="R", caller=caller)
    committed.rollback()
    assert pending(committed) == []
    assert _chain(committed) == []


def test_with_a_broker_requests_enqueue_nothing(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUENTE_BROKER_URL", "redis://127.0.0.1:6379/15")
    get_settings.cache_clear()
    try:
        caller = Caller("hgcj-client", Role.SYSTEM, "hgcj", "MX")
        service.append(db, event_type="rest", subtype="read", action="R", caller=caller)
        assert pending(db) == []
    finally:
        monkeypatch.delenv("PUENTE_BROKER_URL")
        get_settings.cache_clear()
