"""The sealer: appends `audit_chain` rows for entries that requests wrote unsealed.

Requests only INSERT `audit_entry` rows (no lock, no read of the chain), so they never
fork or serialize on it. One sealer at a time gives each new entry the next chain
position, `prev_hash` = the previous row's hash (64 zeros for the first) and
`hash = sha256(prev_hash + canonical(entry))` (see canonical.py). Chain order is seal
order: a transaction that commits late with a lower id simply gets a later position.

Sealing window: a sweep looks only at entries with `id > max sealed audit_id -
ID_WINDOW`, so a run costs a bounded range however long the trail is. An entry must
therefore commit before `ID_WINDOW` newer ids have been sealed past it: request
transactions flush their audit rows last (puente/web.py) and commit at once, so the gap is
one commit's latency. An unsealed entry below the window is never sealed and `verify`
reports it as inserted behind the sealer's back. In embedded mode a request's own run
starts at its first audit id instead (`since_id`), and sweeps happen once a second
(tasks.py).

One sealer at a time: on PostgreSQL a transaction-scoped advisory lock (a second sealer
returns 0 at once; the next run, a second later, picks the rows up); on SQLite the
database has one writer, and the sealer takes it before reading the chain head so that
two sealers queue instead of colliding on the position key.
"""

from __future__ import annotations

from sqlalchemy import Exists, func, insert, select, text
from sqlalchemy.orm import Session

from puente.audit.canonical import GENESIS_HASH, chain_hash
from puente.audit.models import AuditChain, AuditEntry
from puente.db import utcnow

# "PUENTE" in ASCII: the advisory lock key no other code takes.
SEALER_LOCK_KEY = 0x50_55_45_4E_54_45
BATCH_SIZE = 5000
# Measured (2 vCPU, PostgreSQL 15, one new row): a whole run takes 3.3 ms with a window
# of 100 ids and 3.8 ms with 10 000 (SQLite 0.8 and 2.5 ms): the range is cheap next to
# the transaction, and 10 000 ids is 10 s of commit delay at 1 000 audited requests/s.
ID_WINDOW = 10_000

ENTRY_TABLE = AuditEntry.__table__
CHAIN_TABLE = AuditChain.__table__


def take_sealer_lock(session: Session) -> bool:
    """True if this transaction is now the only sealer (until it ends)."""
    if session.get_bind().dialect.name == "postgresql":
        # One round trip: the lock, and asynchronous commit for this transaction only.
        # Chain rows are derived from entries that requests committed durably; if a crash
        # loses the newest chain rows, their entries are unsealed again, still inside the
        # window, and the next run chains them again.
        acquired, _ = session.execute(
            text(
                "SELECT pg_try_advisory_xact_lock(:key), "
                "set_config('synchronous_commit', 'off', true)"
            ),
            {"key": SEALER_LOCK_KEY},
        ).one()
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


def is_sealed(above: int = 0) -> Exists:
    """True for an `audit_entry` row (with an id above `above`) that has a chain row.

    The redundant bound keeps the chain side of the anti-join to the same id range, so a
    generic plan (prepared statements) hashes the window, not the whole chain.
    """
    return (
        select(AuditChain.position)
        .where(AuditChain.audit_id == AuditEntry.id, AuditChain.audit_id > above)
        .exists()
    )


def _head(session: Session) -> tuple[int, str, int | None]:
    """(last position, its hash, the highest sealed audit id) in one round trip."""
    highest = select(func.max(AuditChain.audit_id)).scalar_subquery()
    row = session.execute(
        select(AuditChain.position, AuditChain.hash, highest)
        .order_by(AuditChain.position.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return 0, GENESIS_HASH, None
    return row[0], row[1], row[2]


def seal(session: Session, *, batch_size: int = BATCH_SIZE, since_id: int | None = None) -> int:
    """Chain up to `batch_size` unsealed entries in id order; the number chained.

    Without `since_id`, a sweep of the whole window (it finds late commits). With it, only
    entries from that id up: what one transaction just committed and anything newer,
    without probing the window (measured: the sweep is most of a run's cost).
    Idempotent: entries already chained are never candidates, and the chain's unique
    `audit_id` and primary-key `position` refuse a fork even if the lock were bypassed.
    The caller's unit of work commits.
    """
    if not take_sealer_lock(session):
        return 0
    position, prev_hash, highest = _head(session)
    low = window_floor(highest)
    if since_id is not None:
        low = max(low, since_id - 1)
    rows = session.execute(
        select(ENTRY_TABLE)
        .where(ENTRY_TABLE.c.id > low, ~is_sealed(low))
        .order_by(ENTRY_TABLE.c.id)
        .limit(batch_size)
    ).mappings()
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
    if links:
        session.execute(insert(AuditChain), links)
    return len(links)
