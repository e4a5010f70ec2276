"""`Patient/$everything` across linked records (FHIR R4 Patient/$everything, issue 6).

The set, every row of it through the disclosure gate (`exchange.gate`):

1. the Patient asked for and every Patient the MPI links to it (`matching.links.people`);
2. the patient compartment of each of them (R4 compartmentdefinition-patient: the
   resources whose compartment references, `gate.COMPARTMENT_PARAMS`, point at one);
3. what those resources reference, one level (Practitioner, Location, Organization,
   Encounter...), as HAPI FHIR does; never another person's Patient record;
4. the Provenance resources that target any of the above.

Steps 3 and 4 start from the compartment rows the caller may see, so a withheld record
never pulls in what it references. The gate answers with SQL (`gate.clause(t, within=)`),
so `total` and the pages never count a denied record; what leaves passes through
`service.shown` (Patient.link, labels, disclosure notices, the disclosure audit).

Paging is keyset paging (`puente.fhir.keyset`): the Patients first, then by pk, so pages
neither repeat nor skip while data changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    false,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import Session, aliased

from exchange import service
from exchange.gate import COMPARTMENT_PARAMS, Gate, gate_for
from exchange.matching import links as mpi_links
from exchange.models import DateIndex, ReferenceIndex, StoredResource
from exchange.resources import STORE_TYPES
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction, Role
from puente.errors import Forbidden, Gone, InvalidRequest, Issue
from puente.fhir import keyset
from puente.fhir.dates import date_range
from puente.fhir.keyset import Key
from puente.fhir.sql import among_in
from translation.i18n import N_

DEFAULT_COUNT = 50
MAX_COUNT = 1000
# ARCHITECTURE.md "Roles": clinicians ($everything is theirs), patients (their own
# records, right of access), hospital systems (their own records). Consent officers,
# analysts and admins have no use for a patient's whole record (minimum necessary).
ROLES = frozenset({Role.CLINICIAN, Role.PATIENT, Role.SYSTEM})
# The search parameters that say when a resource's care happened (`start`/`end` are care
# dates, not record dates: R4 Patient/$everything). A resource of a type not listed here,
# or with none of these dates, is in every care period.
CARE_DATES: dict[str, tuple[str, ...]] = {
    "Encounter": ("date",),
    "Observation": ("date",),
    "Condition": ("onset-date", "recorded-date"),
    "AllergyIntolerance": ("date",),
    "MedicationRequest": ("authoredon",),
    "MedicationStatement": ("effective",),
    "Immunization": ("date",),
    "Procedure": ("date",),
    "DiagnosticReport": ("date",),
    "DocumentReference": ("period", "date"),
}
PARAMETERS = ("start", "end", "_since", "_type", "_count", "_page_token")


class EverythingRoleForbidden(Forbidden):
    message_key = N_("error.everything_role_forbidden")


class EverythingParameterInvalid(InvalidRequest):
    message_key = N_("error.everything_parameter_invalid")


class EverythingTypeUnknown(InvalidRequest):
    message_key = N_("error.everything_type_unknown")


@dataclass
class EverythingRequest:
    start: dt.datetime | None = None  # the care period's start (inclusive)
    end: dt.datetime | None = None  # its end (exclusive: the end date's last instant)
    since: dt.datetime | None = None  # meta.lastUpdated at or after
    types: tuple[str, ...] | None = None
    count: int = DEFAULT_COUNT
    page_token: str | None = None
    used: list[tuple[str, str]] = field(default_factory=list)  # for the links, in order


@dataclass(frozen=True)
class Everything:
    resources: list[dict[str, Any]]
    total: int
    next_token: str | None
    previous_token: str | None
    patients: list[str]  # the Patient records of the person the caller may see
    withheld: bool  # records a break-the-glass by the caller would open were left out


def authorize(caller: Caller) -> None:
    if caller.role not in ROLES:
        raise EverythingRoleForbidden()
    caller.require("Patient", Interaction.READ)


# ---- parameters ---------------------------------------------------------------------------


def _bad(name: str) -> EverythingParameterInvalid:
    return EverythingParameterInvalid(name=name[:64])


def _date(name: str, raw: str) -> tuple[dt.datetime, dt.datetime]:
    try:
        return date_range(raw)
    except ValueError as exc:
        raise _bad(name) from exc


def _types(raw: str) -> list[str]:
    names = [t.strip() for t in raw.split(",")]
    for name in names:
        if name not in STORE_TYPES:
            raise EverythingTypeUnknown(name=name[:64] or "_type")
    return names


def parse(items: Iterable[tuple[str, str]]) -> EverythingRequest:
    """The operation's parameters (query string, or a Parameters body made items); a bad
    or unknown one is a 400 naming it."""
    request = EverythingRequest()
    types: list[str] = []
    seen: set[str] = set()
    for name, raw in items:
        if name == "_format":
            continue
        if name not in PARAMETERS or (name in seen and name != "_type"):
            raise _bad(name)
        seen.add(name)
        if name == "start":
            request.start = _date(name, raw)[0]
        elif name == "end":
            request.end = _date(name, raw)[1]
        elif name == "_since":
            request.since = _date(name, raw)[0]
        elif name == "_type":
            types += _types(raw)
        elif name == "_count":
            if not raw.isdigit() or int(raw) > MAX_COUNT:
                raise _bad(name)
            request.count = int(raw)
            continue  # the links write _count themselves
        else:
            request.page_token = raw
            continue
        request.used.append((name, raw))
    if request.start and request.end and request.start >= request.end:
        raise _bad("end")
    if "_type" in seen:
        request.types = tuple(dict.fromkeys(types))
    return request


_VALUE_OF = {
    "start": ("valueDate", "valueDateTime"),
    "end": ("valueDate", "valueDateTime"),
    "_since": ("valueInstant", "valueDateTime"),
    "_type": ("valueCode", "valueString"),
    "_count": ("valueInteger", "valuePositiveInt", "valueUnsignedInt"),
}


def parameter_items(body: Any) -> list[tuple[str, str]]:
    """A Parameters body as (name, text) items, as if they had come in the query."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise _bad("resourceType")
    unknown = sorted(set(body) - {"resourceType", "id", "meta", "parameter"})
    if unknown:
        raise _bad(unknown[0])
    parameters = body.get("parameter") or []
    if not isinstance(parameters, list):
        raise _bad("parameter")
    items: list[tuple[str, str]] = []
    for parameter in parameters:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or name not in _VALUE_OF:
            raise _bad(str(name))
        values = [k for k in parameter if k.startswith("value")]
        if len(values) != 1 or values[0] not in _VALUE_OF[name]:
            raise _bad(name)
        value = parameter[values[0]]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _bad(name)
        items.append((name, str(value)))
    return items


# ---- the set ------------------------------------------------------------------------------


def _care_period(request: EverythingRequest) -> ColumnElement[bool]:
    """Rows whose care dates meet [start, end), and rows without a care date."""
    if request.start is None and request.end is None:
        return true()
    overlap: list[ColumnElement[bool]] = []
    if request.end is not None:
        overlap.append(DateIndex.low < request.end)
    if request.start is not None:
        overlap.append(DateIndex.high > request.start)
    alternatives: list[ColumnElement[bool]] = [StoredResource.res_type.not_in(list(CARE_DATES))]
    for resource_type, params in CARE_DATES.items():
        dated = and_(
            DateIndex.resource_pk == StoredResource.pk,
            DateIndex.res_type == resource_type,
            DateIndex.param.in_(params),
        )
        alternatives.append(
            and_(
                StoredResource.res_type == resource_type,
                or_(~exists().where(dated), exists().where(dated, *overlap)),
            )
        )
    return or_(*alternatives)


@dataclass(frozen=True, slots=True)
class _Row:
    res_type: str
    last_updated: dt.datetime


Rows = dict[int, _Row]  # live rows by pk


def _live(session: Session, pks: Iterable[int]) -> Rows:
    """The live rows among `pks`, with what `_type` and `_since` read."""
    wanted = sorted(set(pks))
    if not wanted:
        return {}
    found = session.execute(
        select(StoredResource.pk, StoredResource.res_type, StoredResource.last_updated).where(
            among_in(session, StoredResource.pk, wanted), StoredResource.deleted.is_(False)
        )
    ).all()
    return {pk: _Row(res_type, last_updated) for pk, res_type, last_updated in found}


def _readable(caller: Caller, rows: Rows) -> set[str]:
    return {r.res_type for r in rows.values() if caller.may(r.res_type, Interaction.READ)}


def _gated(
    session: Session, gate: Gate, caller: Caller, rows: Rows, *extra: ColumnElement[bool]
) -> Rows:
    """The rows the caller may see (and that meet `extra`): the gate's clause for their
    types, its engine asked only about them, in one batch."""
    types = _readable(caller, rows)
    if not types:
        return {}
    within = among_in(session, StoredResource.pk, rows)
    visible = gate.clause_of(types, within=within)
    found = session.scalars(select(StoredResource.pk).where(within, visible, *extra))
    return {pk: rows[pk] for pk in found}


def _compartment(session: Session, person: Sequence[str]) -> tuple[Rows, list[int]]:
    """The person's compartments (R4 compartmentdefinition-patient), their Patient
    records included; and the pks of those Patient records."""
    patients = list(
        session.scalars(
            select(StoredResource.pk).where(
                StoredResource.res_type == "Patient", StoredResource.res_id.in_(person)
            )
        )
    )
    members = session.scalars(
        select(ReferenceIndex.resource_pk).where(
            ReferenceIndex.target_id.in_(person),
            or_(ReferenceIndex.target_type == "Patient", ReferenceIndex.target_type.is_(None)),
            ReferenceIndex.param.in_(COMPARTMENT_PARAMS),
        )
    )
    return _live(session, [*patients, *members]), patients


def _referenced(session: Session, rows: Rows) -> Rows:
    """What `rows` reference (one level), except Patients: a Patient of this person is in
    the set already, another person's never belongs in it."""
    if not rows:
        return {}
    targets = session.execute(
        select(ReferenceIndex.target_type, ReferenceIndex.target_id)
        .where(
            among_in(session, ReferenceIndex.resource_pk, rows),
            ReferenceIndex.target_type.is_not(None),
            ReferenceIndex.target_type != "Patient",
        )
        .distinct()
    ).all()
    wanted = sorted({(t, i) for t, i in targets if t in STORE_TYPES})
    if not wanted:
        return {}
    found = session.scalars(
        select(StoredResource.pk).where(
            tuple_(StoredResource.res_type, StoredResource.res_id).in_(wanted)
        )
    )
    return _live(session, found)


def _provenance(session: Session, rows: Rows) -> Rows:
    """The Provenance resources whose `target` is one of `rows`."""
    if not rows:
        return {}
    target = aliased(StoredResource)
    found = session.scalars(
        select(ReferenceIndex.resource_pk)
        .join(
            target,
            and_(
                target.res_type == ReferenceIndex.target_type,
                target.res_id == ReferenceIndex.target_id,
            ),
        )
        .where(
            ReferenceIndex.res_type == "Provenance",
            ReferenceIndex.param == "target",
            among_in(session, target.pk, rows),
        )
        .distinct()
    )
    return _live(session, found)


def _kept(request: EverythingRequest, rows: Rows) -> list[int]:
    """`_type` and `_since`: the pks of `rows` the response keeps, in pk order."""
    return sorted(
        pk
        for pk, row in rows.items()
        if (request.types is None or row.res_type in request.types)
        and (request.since is None or row.last_updated >= request.since)
    )


def _order() -> list[Key]:
    """The person's Patient records first, then everything else by pk (unique: every row
    has one place, as keyset paging needs)."""
    patient_last = case((StoredResource.res_type == "Patient", 0), else_=1)
    return [Key(patient_last, descending=False), Key(StoredResource.pk, descending=False)]


def _except(rows: Rows, *known: Rows) -> Rows:
    return {pk: row for pk, row in rows.items() if not any(pk in k for k in known)}


def everything(
    session: Session, caller: Caller, *, patient_id: str, request: EverythingRequest
) -> Everything:
    """One page of everything the caller may see about the person `patient_id` is a
    record of. The Patient itself must be visible (else 404 as if it did not exist)."""
    authorize(caller)
    stored = service.load_visible(session, caller, "Patient", patient_id)
    if stored.deleted:
        raise Gone(resource_type="Patient")
    gate = gate_for(session, caller)
    person = sorted(mpi_links.people(session, [patient_id]).get(patient_id, {patient_id}))
    compartment, patient_pks = _compartment(session, person)
    shown = _gated(session, gate, caller, compartment, _care_period(request))
    referenced = _gated(session, gate, caller, _except(_referenced(session, shown), compartment))
    members = {**shown, **referenced}
    provenance = _gated(session, gate, caller, _except(_provenance(session, members), compartment))
    every = _kept(request, {**members, **provenance})
    withheld = _withheld(session, gate, request, compartment, shown)
    patients = sorted(pk for pk in patient_pks if pk in members)
    if request.count == 0:
        return Everything([], len(every), None, None, _references(session, patients), withheld)
    found = keyset.page(
        session,
        select(StoredResource).where(among_in(session, StoredResource.pk, every)),
        _order(),
        count=request.count,
        page_token=request.page_token,
    )
    return Everything(
        service.shown(session, caller, found.rows, subtype="everything"),
        len(every),
        found.next_token,
        found.previous_token,
        _references(session, patients),
        withheld,
    )


def _withheld(
    session: Session, gate: Gate, request: EverythingRequest, compartment: Rows, shown: Rows
) -> bool:
    """Whether compartment rows the request asked for (care period, `_type`, `_since`)
    were left out that a break-the-glass by this caller would open (the `suppressed`/
    `BTG` entry says so, never which)."""
    hidden = _kept(request, _except(compartment, shown))
    if not hidden:
        return False
    within = and_(among_in(session, StoredResource.pk, hidden), _care_period(request))
    return gate.withheld(None, within, visible=false())


def _references(session: Session, pks: Sequence[int]) -> list[str]:
    """`Patient/<id>` of the person's Patient records in the set (for the audit row)."""
    if not pks:
        return []
    found = session.scalars(
        select(StoredResource.res_id).where(among_in(session, StoredResource.pk, pks))
    )
    return [f"Patient/{res_id}" for res_id in sorted(found)]


def issues(withheld: bool) -> list[Issue]:
    return service.withheld_issues(withheld)
