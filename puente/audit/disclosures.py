"""The `disclosure` rows of the audit trail about a set of Patients: what the accounting of
disclosures (consent.accounting) reads, newest first, paged by keyset.

Every request that hands another hospital's records to a caller writes one such row
(puente.web, exchange.service.disclosed), naming the records (`entities`) and the Patients
they are about (`patients`, indexed in `audit_reference`); only successful requests write
one. This module queries the trail and nothing else: who may read it, and which of a row's
records belong to the person asking, are decided by the caller (consent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from puente.audit.models import AuditEntry, AuditReference
from puente.fhir import keyset
from puente.fhir.keyset import Key

DISCLOSURE = "disclosure"
BREAK_THE_GLASS = "break-the-glass"
# Newest first; the id breaks ties between rows of one instant.
NEWEST_FIRST = (Key(AuditEntry.recorded_at, True, is_date=True), Key(AuditEntry.id, True))


@dataclass(frozen=True)
class DisclosurePage:
    entries: list[AuditEntry]
    total: int | None
    next_token: str | None = None
    previous_token: str | None = None


def _about(
    patients: Sequence[str], since: dt.datetime | None, before: dt.datetime | None
) -> Select[Any]:
    """Disclosure rows naming any of `patients` (`Patient/<id>`), recorded in
    [since, before)."""
    criteria: list[ColumnElement[bool]] = [
        AuditEntry.event_type == DISCLOSURE,
        AuditEntry.id.in_(
            select(AuditReference.audit_id).where(
                AuditReference.kind == "patient",
                AuditReference.reference.in_(sorted(set(patients))),
            )
        ),
    ]
    if since is not None:
        criteria.append(AuditEntry.recorded_at >= since)
    if before is not None:
        criteria.append(AuditEntry.recorded_at < before)
    return select(AuditEntry).where(*criteria)


def about_patients(
    session: Session,
    *,
    patients: Sequence[str],
    since: dt.datetime | None = None,
    before: dt.datetime | None = None,
    count: int,
    page_token: str | None = None,
    with_total: bool = True,
) -> DisclosurePage:
    """One page of the disclosures about `patients`, newest first, and how many in all."""
    if not patients:
        return DisclosurePage([], 0 if with_total else None)
    base = _about(patients, since, before)
    total = None
    if with_total:
        total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if count == 0:
        return DisclosurePage([], total)
    found = keyset.page(session, base, NEWEST_FIRST, count=count, page_token=page_token)
    return DisclosurePage(found.rows, total, found.next_token, found.previous_token)


def all_about_patients(
    session: Session,
    *,
    patients: Sequence[str],
    since: dt.datetime | None = None,
    before: dt.datetime | None = None,
    batch: int = 500,
) -> Iterator[AuditEntry]:
    """Every disclosure about `patients`, newest first, read in keyset batches (a
    download holds the whole accounting, not one page)."""
    token: str | None = None
    while True:
        page = about_patients(
            session,
            patients=patients,
            since=since,
            before=before,
            count=batch,
            page_token=token,
            with_total=False,
        )
        yield from page.entries
        if page.next_token is None:
            return
        token = page.next_token
