"""The sealer: appends `audit_chain` rows for entries that requests wrote unsealed.

Requests only INSERT `audit_entry` rows (no lock, no read of the chain), so they never
fork or serialize on it. One sealer at a time gives each new entry the next chain
position, `prev_hash` = the previous row's hash (64 zeros for the first) and
`hash = sha256(prev_hash + canonical(entry))` (see canonical.py). Chain order is seal
order: a transaction that commits late with a lower id simply gets a later position.

Sealing window: the sealer looks only at entries with `id > max sealed audit_id -
ID_WINDOW`, so a run costs a bounded range of index probes however long the trail is.
An entry must therefore commit before `ID_WINDOW` newer ids have been sealed past it:
request transactions flush their audit rows last (puente/web.py) and commit at once, so
the gap is one commit's latency. An unsealed entry below the window is never sealed and
`verify` reports it as inserted behind the sealer's back.

One sealer at a time: on PostgreSQL a transaction-scoped advisory lock (a second sealer
returns 0 at once; the next run, a second later, picks the rows up); on SQLite the
database has one writer, and the sealer takes it before reading the chain head so that
two sealers queue instead of colliding on the position key.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Exists, func, insert, select, text
from sqlalchemy.orm import Session

from puente.audit.canonical import GENESIS_HASH, chain_hash
from puente.audit.models import AuditChain, AuditEntry
from puente.db import utcnow

# "PUENTE" in ASCII: the advisory lock key no other code takes.
SEALER_LOCK_KEY = 0x50_55_45_4E_54_45
BATCH_SIZE = 5000
# Measured: a seal run probes this range in a few milliseconds on PostgreSQL and SQLite
# (benchmarks/read_throughput.py seals after every request in embedded mode).
ID_WINDOW = 10_000

ENTRY_TABLE = AuditEntry.__table__
CHAIN_TABLE = AuditChain.__table__


def take_sealer_lock(session: Session) -> bool:
    """True if this transaction is now the only sealer (until it ends)."""
    if session.get_bind().dialect.name == "postgresql":
        acquired = session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SEALER_LOCK_KEY}
        )
        return bool(acquired)
    # SQLite: a write statement takes the database's single write lock (waiting for it up
    # to the busy timeout) and pins this transaction to the newest committed state.
    session.execute(text("UPDATE audit_chain SET position = position WHERE 1 = 0"))
    return True


def window_floor(max_sealed_id: int | None) -> int:
    """Entries with an id above this are the sealer's candidates (0: the whole trail)."""
    return 0 if max_sealed_id is None else max(0, max_sealed_id - ID_WINDOW)


def max_sealed_id(session: Session) -> int | None:
    return session.scalar(select(func.max(AuditChain.audit_id)))


def is_sealed() -> Exists:
    """True for an `audit_entry` row that has a chain row."""
    return select(AuditChain.position).where(AuditChain.audit_id == AuditEntry.id).exists()


def _candidate_ids(session: Session, floor: int, limit: int) -> Sequence[int]:
    return session.scalars(
        select(AuditEntry.id)
        .where(AuditEntry.id > floor, ~is_sealed())
        .order_by(AuditEntry.id)
        .limit(limit)
    ).all()


def seal(session: Session, *, batch_size: int = BATCH_SIZE) -> int:
    """Chain up to `batch_size` unsealed entries in id order; the number chained.

    Idempotent: entries already chained are never candidates, and the chain's unique
    `audit_id` and primary-key `position` refuse a fork even if the lock were bypassed.
    The caller's unit of work commits.
    """
    if not take_sealer_lock(session):
        return 0
    head = session.execute(
        select(AuditChain.position, AuditChain.hash).order_by(AuditChain.position.desc()).limit(1)
    ).one_or_none()
    ids = _candidate_ids(session, window_floor(max_sealed_id(session)), batch_size)
    if not ids:
        return 0
    rows = session.execute(
        select(ENTRY_TABLE).where(ENTRY_TABLE.c.id.in_(ids)).order_by(ENTRY_TABLE.c.id)
    ).mappings()
    position, prev_hash = (head.position, head.hash) if head is not None else (0, GENESIS_HASH)
    sealed_at = utcnow()
    links = []
    for row in rows:
        position += 1
        digest = chain_hash(prev_hash, row)
        links.append(
            {
                "position": position,
                "audit_id": row["id"],
                "prev_hash": prev_hash,
                "hash": digest,
                "sealed_at": sealed_at,
            }
        )
        prev_hash = digest
    session.execute(insert(AuditChain), links)
    return len(links)
