"""Appending to the audit trail. Requests insert unsealed rows; see sealer.py for the chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, func, insert, select, true
from sqlalchemy.orm import Session

from puente.audit.models import AuditEntry, AuditReference
from puente.audit.search import SEARCH_PARAMS, criterion_clause, sort_keys
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction, Role
from puente.db import utcnow
from puente.errors import Forbidden, NotFound
from puente.fhir import keyset
from puente.fhir.search import SearchRequest, parse_search
from puente.settings import get_settings
from puente.tasks import enqueue, pending
from translation.i18n import N_

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12
SEAL_TASK = "puente.audit.seal"


def _seal_after_commit(session: Session, entry_id: int) -> None:
    """Embedded mode (no broker): chain the new rows right after this transaction commits.

    Once per transaction (the pending list lives until commit or rollback), naming the
    transaction's first audit id so that the sealer looks from there up. With a broker,
    Celery beat seals every second instead, and requests send nothing.
    """
    if get_settings().broker_url is not None:
        return
    if not any(name == SEAL_TASK for name, _ in pending(session)):
        enqueue(session, SEAL_TASK, entry_id)


@dataclass(frozen=True)
class Event:
    """One audit row to append. `agent` names who acted when there is no Caller (a failed
    sign-in names the account tried, never the password)."""

    event_type: str
    subtype: str
    action: str
    outcome: int = SUCCESS
    caller: Caller | None = None
    agent: str | None = None
    request_id: str | None = None
    source_ip: str | None = None
    entities: Sequence[str] = ()
    patients: Sequence[str] = ()
    outcome_detail: str | None = None


def append(
    session: Session,
    *,
    event_type: str,
    subtype: str,
    action: str,
    outcome: int = SUCCESS,
    caller: Caller | None = None,
    agent: str | None = None,
    request_id: str | None = None,
    source_ip: str | None = None,
    entities: Sequence[str] = (),
    patients: Sequence[str] = (),
    outcome_detail: str | None = None,
) -> AuditEntry:
    """Add one audit row (and its reference index) to the session; the shell commits it."""
    event = Event(
        event_type,
        subtype,
        action,
        outcome,
        caller,
        agent,
        request_id,
        source_ip,
        entities,
        patients,
        outcome_detail,
    )
    (entry,) = append_all(session, [event])
    return entry


def append_all(session: Session, events: Sequence[Event]) -> list[AuditEntry]:
    """Add several audit rows to the session in one INSERT, their references in one more
    (a transaction Bundle notes one event per entry: measured, a hundred flushes and a
    hundred reference inserts were 15% of the server's time for a 100-entry Bundle)."""
    if not events:
        return []
    now = utcnow()
    entries: list[AuditEntry] = []
    for event in events:
        caller = event.caller
        entries.append(
            AuditEntry(
                recorded_at=now,
                request_id=event.request_id,
                event_type=event.event_type,
                subtype=event.subtype,
                action=event.action,
                outcome=event.outcome,
                outcome_detail=event.outcome_detail,
                agent=caller.subject if caller else event.agent,
                agent_role=caller.role.value if caller else None,
                fhir_user=caller.fhir_user if caller else None,
                org_code=caller.org_code if caller else None,
                country=caller.country if caller else None,
                purpose_of_use=caller.purpose_of_use if caller else None,
                source_ip=event.source_ip,
                entities=list(dict.fromkeys(event.entities)),
                patients=list(dict.fromkeys(event.patients)),
            )
        )
    session.add_all(entries)
    session.flush()
    references = [
        {"audit_id": entry.id, "reference": reference, "kind": kind}
        for entry in entries
        for kind, named in (("entity", entry.entities), ("patient", entry.patients))
        for reference in named
    ]
    if references:
        # One executemany, no ORM objects: a `$everything` page names hundreds of
        # resources (measured: the ORM's per-object bookkeeping was most of its audit cost).
        session.execute(insert(AuditReference), references)
    _seal_after_commit(session, entries[0].id)
    return entries


# Reading the trail (ARCHITECTURE.md "Roles"): consent officers see their hospital's
# events, admins all of them. Other roles may hold wildcard scopes (`user/*.rs`), so the
# role is checked as well as the scope.
AUDIT_READERS = frozenset({Role.CONSENT_OFFICER, Role.ADMIN})


@dataclass(frozen=True)
class EventPage:
    entries: list[AuditEntry]
    total: int | None
    next_token: str | None = None
    previous_token: str | None = None


def _authorize(caller: Caller, interaction: Interaction) -> None:
    caller.require("AuditEvent", interaction)
    if caller.role not in AUDIT_READERS:
        raise Forbidden(N_("error.audit_role_forbidden"))


def _visible(caller: Caller) -> ColumnElement[bool]:
    """What a caller may see; anything else is answered as if it did not exist (404)."""
    if caller.role is Role.ADMIN:
        return true()
    if caller.org_code is None:
        return false()
    return AuditEntry.org_code == caller.org_code


def parse(items: list[tuple[str, str]], *, lenient: bool) -> SearchRequest:
    return parse_search(items, SEARCH_PARAMS, lenient=lenient)


def read_event(session: Session, caller: Caller, *, event_id: str) -> AuditEntry:
    _authorize(caller, Interaction.READ)
    entry = None
    if event_id.isdigit() and len(event_id) < 19:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.id == int(event_id), _visible(caller))
        ).one_or_none()
    if entry is None:
        raise NotFound(resource_type="AuditEvent", res_id=event_id[:64])
    return entry


def search_events(session: Session, caller: Caller, *, request: SearchRequest) -> EventPage:
    _authorize(caller, Interaction.SEARCH)
    base = select(AuditEntry).where(
        _visible(caller), *(criterion_clause(c) for c in request.criteria)
    )
    total = None
    if request.total != "none":
        total = session.scalar(select(func.count()).select_from(base.subquery()))
    if request.count == 0:
        return EventPage([], total)
    found = keyset.page(
        session,
        base,
        sort_keys(request.sort),
        count=request.count,
        page_token=request.page_token,
        offset=request.offset,
    )
    return EventPage(found.rows, total, found.next_token, found.previous_token)
