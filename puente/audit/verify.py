"""`puente audit verify`: re-walk the chain and say where, if anywhere, it breaks.

Walking `audit_chain` in position order, each row must sit at the next position, name an
entry that exists, carry the previous row's hash as `prev_hash`, and carry
`sha256(prev_hash + canonical(entry as stored now))` as `hash`; the entry's
`audit_reference` rows must list exactly its entities and patients. After the walk, an
unsealed entry below the sealing window (which the sealer will never chain) is an entry
inserted behind the sealer's back; unsealed entries inside the window are only counted.

What this detects (45 CFR 164.312(b) audit controls, 164.312(c)(1) integrity): an entry
altered, removed (its chain row then names nothing, or the chain has a gap or a broken
link), inserted (below the window, or as a forged chain row), or reordered (contents or
positions swapped). What a hash chain alone cannot detect: the newest rows cut off
together with their chain rows, or a chain recomputed wholesale by someone holding write
access; the summary prints the head position and hash so an operator can anchor them
elsewhere and compare later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping, func, select
from sqlalchemy.orm import Session

from puente.audit.canonical import GENESIS_HASH, chain_hash
from puente.audit.models import AuditEntry, AuditReference
from puente.audit.sealer import CHAIN_TABLE, ENTRY_TABLE, is_sealed, max_sealed_id, window_floor

WALK_BATCH = 5000

REASONS = {
    "position-gap": "chain position missing before this row (a chain row was removed)",
    "entry-missing": "chain row names an audit entry that does not exist (entry removed)",
    "prev-hash-mismatch": (
        "prev_hash differs from the previous row's hash (a row was removed, inserted or reordered)"
    ),
    "hash-mismatch": "entry no longer matches its sealed hash (altered, swapped or forged)",
    "references-mismatch": "audit_reference rows disagree with the entry's entities/patients",
    "unsealed-outside-window": (
        "entry was never sealed and lies below the sealing window (inserted without sealing)"
    ),
}


@dataclass(frozen=True)
class Problem:
    """The first bad row: where it is and why; never the entry's content (it may be PHI)."""

    reason: str  # a key of REASONS
    position: int | None
    audit_id: int | None

    def describe(self) -> str:
        where = []
        if self.position is not None:
            where.append(f"position {self.position}")
        if self.audit_id is not None:
            where.append(f"audit id {self.audit_id}")
        return f"{', '.join(where)}: {self.reason}: {REASONS[self.reason]}"


@dataclass(frozen=True)
class Report:
    checked: int  # chain rows verified before the first problem (all of them if none)
    head_position: int
    head_hash: str
    pending: int  # unsealed entries inside the window: the sealer will chain them
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _references(session: Session, audit_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    rows = session.execute(
        select(AuditReference.audit_id, AuditReference.kind, AuditReference.reference).where(
            AuditReference.audit_id.in_(audit_ids)
        )
    )
    for audit_id, kind, reference in rows:
        found[audit_id].append((kind, reference))
    return found


def _expected_references(entry: Mapping[Any, Any]) -> list[tuple[str, str]]:
    return sorted(
        [("entity", r) for r in entry["entities"] or []]
        + [("patient", r) for r in entry["patients"] or []]
    )


def _check(
    row: Mapping[Any, Any], position: int, prev_hash: str, references: list[tuple[str, str]]
) -> Problem | None:
    def problem(reason: str) -> Problem:
        return Problem(reason, row["position"], row["audit_id"])

    if row["position"] != position:
        return problem("position-gap")
    if row["id"] is None:
        return problem("entry-missing")
    if row["prev_hash"] != prev_hash:
        return problem("prev-hash-mismatch")
    if row["hash"] != chain_hash(prev_hash, row):
        return problem("hash-mismatch")
    if sorted(references) != _expected_references(row):
        return problem("references-mismatch")
    return None


def _chain_page(session: Session, after: int) -> list[RowMapping]:
    joined = CHAIN_TABLE.outerjoin(ENTRY_TABLE, ENTRY_TABLE.c.id == CHAIN_TABLE.c.audit_id)
    query = (
        select(
            CHAIN_TABLE.c.position,
            CHAIN_TABLE.c.audit_id,
            CHAIN_TABLE.c.prev_hash,
            CHAIN_TABLE.c.hash,
            *ENTRY_TABLE.c,
        )
        .select_from(joined)
        .where(CHAIN_TABLE.c.position > after)
        .order_by(CHAIN_TABLE.c.position)
        .limit(WALK_BATCH)
    )
    return list(session.execute(query).mappings())


def _unsealed(session: Session) -> tuple[int, int | None]:
    """(unsealed entries inside the window, the lowest unsealed id below it or None)."""
    floor = window_floor(max_sealed_id(session))
    pending = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.id > floor, ~is_sealed(floor))
    )
    orphan = session.scalar(
        select(AuditEntry.id)
        .where(AuditEntry.id <= floor, ~is_sealed())
        .order_by(AuditEntry.id)
        .limit(1)
    )
    return int(pending or 0), orphan


def verify(session: Session) -> Report:
    """Walk the whole chain; the report names the first bad row, if any."""
    position, prev_hash, after = 1, GENESIS_HASH, 0
    while page := _chain_page(session, after):
        references = _references(session, [r["audit_id"] for r in page])
        for row in page:
            problem = _check(row, position, prev_hash, references.get(row["audit_id"], []))
            if problem is not None:
                return Report(position - 1, position - 1, prev_hash, 0, problem)
            prev_hash = row["hash"]
            position += 1
        after = page[-1]["position"]
    pending, orphan = _unsealed(session)
    problem = None if orphan is None else Problem("unsealed-outside-window", None, orphan)
    return Report(position - 1, position - 1, prev_hash, pending, problem)
