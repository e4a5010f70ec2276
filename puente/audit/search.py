"""AuditEvent search parameters and their SQL over `audit_entry` and `audit_reference`.

Criteria are ANDed, the values of one criterion ORed (R4 3.1.1.5.3). `date` compares
`recorded`, an instant, with the range a search value covers (R4 3.1.1.5.6).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, not_, or_, select, true

from puente.audit.models import AuditEntry, AuditReference
from puente.audit.render import (
    AUTH_SUBTYPES,
    EVENT_TYPES,
    PUENTE_AGENT,
    PUENTE_EVENT_TYPE,
    PUENTE_SUBTYPE,
    RESTFUL_INTERACTION,
)
from puente.errors import InvalidRequest, Issue
from puente.fhir.keyset import Key
from puente.fhir.search import (
    Criterion,
    DateValue,
    ParamType,
    ReferenceValue,
    SearchParam,
    TokenValue,
    Value,
)
from puente.fhir.sql import LIKE_ESCAPE, instant_clause, like_escape
from translation.i18n import N_

OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
OUTCOMES = frozenset({0, 4, 8, 12})
AGENT_TARGETS = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Organization")

SEARCH_PARAMS = (
    SearchParam("date", ParamType.DATE, "When the activity was recorded", ("recorded",)),
    SearchParam("_lastUpdated", ParamType.DATE, "Same as date (meta.lastUpdated = recorded)"),
    SearchParam("_id", ParamType.TOKEN, "The audit row id"),
    SearchParam(
        "agent",
        ParamType.REFERENCE,
        "Who acted: a fhirUser (Practitioner/1), the caller's Organization, or the client "
        "or account id (agent:identifier=urn:puente:agent|id also works)",
        ("agent.who",),
        AGENT_TARGETS,
    ),
    SearchParam("entity", ParamType.REFERENCE, "A resource touched", ("entity.what",)),
    SearchParam(
        "patient", ParamType.REFERENCE, "A patient whose data was touched", (), ("Patient",)
    ),
    SearchParam("outcome", ParamType.TOKEN, "0 success, 4 minor, 8 serious, 12 major failure"),
    SearchParam("type", ParamType.TOKEN, "Event type, e.g. rest or DCM|110114"),
    SearchParam("subtype", ParamType.TOKEN, "Event subtype, e.g. read or search-type"),
    SearchParam("action", ParamType.TOKEN, "C, R, U, D or E"),
)


def _bad(name: str, key: str = N_("error.search_value_invalid")) -> InvalidRequest:
    return InvalidRequest(issues=[Issue(key, {"name": name}, code="invalid")])


def _referenced(kinds: tuple[str, ...], clause: ColumnElement[bool]) -> ColumnElement[bool]:
    return AuditEntry.id.in_(
        select(AuditReference.audit_id).where(AuditReference.kind.in_(kinds), clause)
    )


def _reference_match(value: ReferenceValue) -> ColumnElement[bool]:
    column = AuditReference.reference
    if value.target_type:
        exact = f"{value.target_type}/{value.target_id}"
        # a vread names `Type/id/_history/n`; it is an access to `Type/id` too
        return or_(column == exact, column.like(f"{like_escape(exact)}/%", escape=LIKE_ESCAPE))
    tail = like_escape(value.target_id)
    return or_(
        column.like(f"%/{tail}", escape=LIKE_ESCAPE),
        column.like(f"%/{tail}/\\_history/%", escape=LIKE_ESCAPE),
    )


def _agent_clause(modifier: str | None, value: ReferenceValue) -> ColumnElement[bool]:
    if modifier == "identifier":
        raw = f"{value.target_type}/{value.target_id}" if value.target_type else value.target_id
        system, _, code = raw.rpartition("|")
        if system and system != PUENTE_AGENT:
            return false()
        return AuditEntry.agent == code
    if value.target_type == "Organization":
        return AuditEntry.org_code == value.target_id
    if value.target_type:
        return AuditEntry.fhir_user == f"{value.target_type}/{value.target_id}"
    return or_(
        AuditEntry.agent == value.target_id,
        AuditEntry.fhir_user.like(f"%/{like_escape(value.target_id)}", escape=LIKE_ESCAPE),
    )


def _token_in(value: TokenValue, system: str) -> bool:
    return value.system is None or value.system == system


def _type_clause(value: TokenValue) -> ColumnElement[bool]:
    matched = [
        name
        for name, coding in EVENT_TYPES.items()
        if value.code == coding["code"] and _token_in(value, coding["system"])
    ]
    if _token_in(value, PUENTE_EVENT_TYPE) and value.code:
        matched.append(value.code)
    return AuditEntry.event_type.in_(matched) if matched else false()


def _subtype_clause(value: TokenValue) -> ColumnElement[bool]:
    clauses = [
        AuditEntry.event_type == name
        for name, coding in AUTH_SUBTYPES.items()
        if value.code == coding["code"] and _token_in(value, coding["system"])
    ]
    if value.code and (_token_in(value, RESTFUL_INTERACTION) or _token_in(value, PUENTE_SUBTYPE)):
        clauses.append(AuditEntry.subtype == value.code)
    return or_(*clauses) if clauses else false()


def _outcome_clause(name: str, value: TokenValue) -> ColumnElement[bool]:
    try:
        code = int(value.code or "")
    except ValueError as exc:
        raise _bad(name) from exc
    if code not in OUTCOMES:
        raise _bad(name)
    return AuditEntry.outcome == code if _token_in(value, OUTCOME_SYSTEM) else false()


def _token_clause(name: str, value: TokenValue) -> ColumnElement[bool]:
    match name:
        case "_id":
            code = value.code or ""
            return AuditEntry.id == int(code) if code.isdigit() and len(code) < 19 else false()
        case "outcome":
            return _outcome_clause(name, value)
        case "type":
            return _type_clause(value)
        case "subtype":
            return _subtype_clause(value)
        case _:  # action
            return AuditEntry.action == value.code if value.code else false()


def _value_clause(criterion: Criterion, value: Value) -> ColumnElement[bool]:
    name, modifier = criterion.param.name, criterion.modifier
    if isinstance(value, DateValue):
        return instant_clause(AuditEntry.recorded_at, value)
    if isinstance(value, TokenValue):
        return _token_clause(name, value)
    if isinstance(value, ReferenceValue):
        if name == "agent":
            return _agent_clause(modifier, value)
        if modifier == "identifier":  # entities are kept as references, not identifiers
            raise InvalidRequest(
                issues=[Issue(N_("error.search_modifier"), {"name": name}, code="not-supported")]
            )
        kinds = ("patient",) if name == "patient" else ("entity", "patient")
        return _referenced(kinds, _reference_match(value))
    raise _bad(name)


def _missing_clause(name: str, missing: bool) -> ColumnElement[bool]:
    match name:
        case "agent":
            present: ColumnElement[bool] = or_(
                AuditEntry.agent.is_not(None), AuditEntry.fhir_user.is_not(None)
            )
        case "entity":
            present = _referenced(("entity", "patient"), true())
        case "patient":
            present = _referenced(("patient",), true())
        case _:  # every other parameter is always present
            present = true()
    return not_(present) if missing else present


def criterion_clause(criterion: Criterion) -> ColumnElement[bool]:
    if criterion.modifier == "missing":
        return _missing_clause(criterion.param.name, criterion.values[0] == "true")
    matched = or_(*(_value_clause(criterion, v) for v in criterion.values))
    return not_(matched) if criterion.modifier == "not" else matched


def sort_keys(sort: str | None) -> list[Key]:
    """The keyset order of a search: ascending id by default, or by `recorded` (which is
    `meta.lastUpdated`) with the id to break ties."""
    if sort == "_lastUpdated":
        return [Key(AuditEntry.recorded_at, False, is_date=True), Key(AuditEntry.id, False)]
    if sort == "-_lastUpdated":
        return [Key(AuditEntry.recorded_at, True, is_date=True), Key(AuditEntry.id, True)]
    return [Key(AuditEntry.id, False)]
