"""Accounting of disclosures (issue 6, point 9): who on the other side of the border saw
which of a person's records, when, how and why, read from the audit trail.

45 CFR 164.528 exempts disclosures for treatment from the accounting a covered entity owes;
Puente shows patients every cross-border disclosure all the same (DOMAIN.md, "Law and
policy": a product choice beyond the rule). A disclosure is an audit row of event type
`disclosure`: one per request that handed another hospital's records to a caller. A
hospital's own reads and a patient's own reads never write one (exchange.gate).

Who may read one (ARCHITECTURE.md, "Roles"):
- the patient, for their own Patient record or one the MPI links to it;
- a consent officer of the hospital that holds `Patient/{id}` (a patient may ask at the
  privacy office), who sees what the patient would;
- any other Patient, or another hospital's record, is answered 404 exactly as if it did
  not exist; roles that never read an accounting (clinician, system, analyst, admin) get
  403 whatever the patient, which says nothing about it.
The accounting covers the person: the Patient asked about and every record the MPI links
to it now. A row that also names other people's records (a search across patients) shows
only this person's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from consent.errors import DisclosuresParameterInvalid, DisclosuresRangeInvalid
from exchange import service as exchange
from exchange import store
from exchange.matching import links
from puente.audit import disclosures as trail
from puente.audit.models import AuditEntry
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction, Role
from puente.errors import Forbidden, InvalidRequest, NotFound
from puente.settings import get_settings
from translation.i18n import N_

READERS = frozenset({Role.PATIENT, Role.CONSENT_OFFICER})
DEFAULT_COUNT = 50
MAX_COUNT = 500
PARAMETERS = frozenset({"start", "end", "_count", "_page_token", "_format"})
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@dataclass(frozen=True)
class Query:
    """`[since, before)` in UTC (from the local days `start` and `end`), the page asked."""

    since: dt.datetime | None = None
    before: dt.datetime | None = None
    count: int = DEFAULT_COUNT
    page_token: str | None = None
    used: tuple[tuple[str, str], ...] = ()  # the parameters as given, for paging links


@dataclass(frozen=True)
class Disclosure:
    """One disclosure as the person reads it."""

    entry: AuditEntry
    records: tuple[str, ...]  # `Type/id` of this person's records that crossed
    patients: tuple[str, ...]  # `Patient/id` of this person the row names
    practitioner: str | None  # the name the Practitioner record gives, if any
    hospital: str  # the recipient hospital's name (its code if it has none)
    break_the_glass: bool


@dataclass(frozen=True)
class Accounting:
    patient_id: str
    items: list[Disclosure]
    total: int | None
    next_token: str | None = None
    previous_token: str | None = None


# -- who may ask ---------------------------------------------------------------------------


def authorize(caller: Caller) -> None:
    """403 for the roles that never read an accounting (it says nothing about a patient)."""
    caller.require("AuditEvent", Interaction.READ)
    if caller.role not in READERS:
        raise Forbidden(N_("error.disclosures_role_forbidden"))


def person(session: Session, caller: Caller, patient_id: str) -> frozenset[str]:
    """The Patient ids of the person whose accounting `caller` asks for (`patient_id` and
    the records linked to it), or 404 as if the Patient did not exist."""
    authorize(caller)
    row = store.load(session, "Patient", patient_id) if len(patient_id) <= 64 else None
    if row is not None:
        ids = links.people(session, [patient_id]).get(patient_id, frozenset()) | {patient_id}
        if caller.role is Role.PATIENT:
            mine = (caller.fhir_user or "").removeprefix("Patient/")
            if caller.fhir_user == f"Patient/{mine}" and mine in ids:
                return ids
        elif caller.org_code and row.owner == caller.org_code:
            return ids
    raise NotFound(resource_type="Patient", res_id=patient_id[:64])


# -- the parameters ------------------------------------------------------------------------


def _day(name: str, value: str, zone: ZoneInfo, *, end: bool) -> dt.datetime:
    """The first instant of a FHIR `date` (YYYY, YYYY-MM, YYYY-MM-DD) at the border, or,
    for `end`, the first instant after it: people give days on their own clock."""
    if not _DATE.match(value):
        raise InvalidRequest(N_("error.search_date_invalid"), name=name)
    year, month, day = (int(p) for p in [*value.split("-"), "1", "1"][:3])
    try:
        first = dt.date(year, month, day)
    except ValueError as exc:
        raise InvalidRequest(N_("error.search_date_invalid"), name=name) from exc
    if end:
        parts = value.count("-")
        if parts == 2:
            first += dt.timedelta(days=1)
        elif parts == 1:
            first = dt.date(year + month // 12, month % 12 + 1, 1)
        else:
            first = dt.date(year + 1, 1, 1)
    return dt.datetime.combine(first, dt.time(), zone).astimezone(dt.UTC)


def _count(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= MAX_COUNT:
        raise InvalidRequest(N_("error.search_count_range"), name="_count")
    return int(value)


def parse(items: Iterable[tuple[str, str]]) -> Query:
    """The operation's parameters; 400 naming any other one, or one given twice."""
    seen: dict[str, str] = {}
    for name, value in items:
        if name not in PARAMETERS or name in seen:
            raise DisclosuresParameterInvalid(name=name[:64])
        seen[name] = value.strip()
    zone = ZoneInfo(get_settings().timezone)
    since = _day("start", seen["start"], zone, end=False) if "start" in seen else None
    before = _day("end", seen["end"], zone, end=True) if "end" in seen else None
    if since is not None and before is not None and since >= before:
        raise DisclosuresRangeInvalid()
    used = tuple((k, seen[k]) for k in ("start", "end") if k in seen)
    return Query(
        since=since,
        before=before,
        count=_count(seen["_count"]) if "_count" in seen else DEFAULT_COUNT,
        page_token=seen.get("_page_token") or None,
        used=used,
    )


# -- the accounting ------------------------------------------------------------------------


def _shown(
    session: Session, entries: Sequence[AuditEntry], ids: frozenset[str]
) -> list[Disclosure]:
    """The rows as the person reads them: only their records, with who and where."""
    mine = {f"Patient/{p}" for p in ids}
    about = exchange.patients_of(session, [r for e in entries for r in e.entities or ()])
    names = exchange.display_names(
        session,
        [e.fhir_user for e in entries if e.fhir_user]
        + [f"Organization/{e.org_code}" for e in entries if e.org_code],
    )
    found = []
    for entry in entries:
        records = tuple(r for r in entry.entities or () if about.get(r) in ids)
        patients = tuple(p for p in entry.patients or () if p in mine)
        hospital = entry.org_code or ""
        found.append(
            Disclosure(
                entry=entry,
                records=records,
                patients=patients,
                practitioner=names.get(entry.fhir_user or ""),
                hospital=names.get(f"Organization/{hospital}", hospital),
                break_the_glass=entry.outcome_detail == trail.BREAK_THE_GLASS,
            )
        )
    return found


def accounting(session: Session, caller: Caller, *, patient_id: str, query: Query) -> Accounting:
    """One page of the person's disclosures, newest first."""
    ids = person(session, caller, patient_id)
    page = trail.about_patients(
        session,
        patients=[f"Patient/{p}" for p in sorted(ids)],
        since=query.since,
        before=query.before,
        count=query.count,
        page_token=query.page_token,
    )
    return Accounting(
        patient_id,
        _shown(session, page.entries, ids),
        page.total,
        page.next_token,
        page.previous_token,
    )


def download(
    session: Session, caller: Caller, *, patient_id: str, query: Query
) -> list[Disclosure]:
    """The whole accounting between `start` and `end` (a download is not paged)."""
    ids = person(session, caller, patient_id)
    entries = list(
        trail.all_about_patients(
            session,
            patients=[f"Patient/{p}" for p in sorted(ids)],
            since=query.since,
            before=query.before,
        )
    )
    found: list[Disclosure] = []
    for start in range(0, len(entries), MAX_COUNT):
        found += _shown(session, entries[start : start + MAX_COUNT], ids)
    return found
