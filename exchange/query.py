"""Search over the index tables: criteria become `pk IN (subquery)` clauses, never JSON scans.

Paging is keyset paging: a page token holds the sort-key values of the row it continues
from (and the pk as the last key), so rows inserted or deleted elsewhere in the result
never shift a page onto rows already seen or past rows not yet seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement as Clause

from consent import service as labelling
from exchange.indexing import fold
from exchange.models import (
    INDEX_TABLE_OF_TYPE,
    DateIndex,
    QuantityIndex,
    ReferenceIndex,
    StoredResource,
    StringIndex,
    TokenIndex,
)
from puente.fhir import keyset
from puente.fhir.keyset import Key
from puente.fhir.search import (
    Criterion,
    DateValue,
    Include,
    ParamType,
    QuantityValue,
    ReferenceValue,
    SearchRequest,
    SortKey,
    TokenValue,
)
from puente.fhir.sql import LIKE_ESCAPE, approximate, instant_clause, like_escape

# Which stored resources of a type the caller may see (the disclosure gate's SQL side).
Visible = Callable[[str], ColumnElement[bool]]


def _string_clause(modifier: str | None, value: str) -> Clause[bool]:
    if modifier == "exact":
        return StringIndex.exact == value
    folded = like_escape(fold(value))
    if modifier == "contains":
        return StringIndex.value.like(f"%{folded}%", escape=LIKE_ESCAPE)
    return StringIndex.value.like(f"{folded}%", escape=LIKE_ESCAPE)


def _token_clause(value: TokenValue) -> Clause[bool]:
    clauses: list[Clause[bool]] = []
    if value.system == "":
        clauses.append(TokenIndex.system.is_(None))
    elif value.system is not None:
        clauses.append(TokenIndex.system == value.system)
    if value.code is not None:
        clauses.append(TokenIndex.code == value.code)
    return and_(*clauses)


def _date_clause(value: DateValue) -> Clause[bool]:
    low, high = DateIndex.low, DateIndex.high
    # `low <= value.high` follows from the others (every indexed range has low <= high: a
    # Period's per-1 is enforced on write) and bounds the index range scan on low, which
    # otherwise ran from value.low to the last date of the parameter.
    within = and_(low >= value.low, low <= value.high, high <= value.high)
    match value.prefix:
        case "eq":
            return within
        case "ne":
            return not_(within)
        case "gt":
            return high > value.high
        case "lt":
            return low < value.low
        case "ge":
            return or_(high > value.high, within)
        case "le":
            return or_(low < value.low, within)
        case "sa":
            return low >= value.high
        case "eb":
            return high <= value.low
        case _:  # ap
            wide_low, wide_high = approximate(value)
            return and_(low < wide_high, high > wide_low)


def _quantity_clause(value: QuantityValue) -> Clause[bool]:
    """R4 3.1.1.4.3: `eq` is the number's precision range; `ap` is within 10%."""
    number = QuantityIndex.value
    within = and_(number >= value.low, number < value.high)
    slack = abs(value.number) / Decimal(10)
    match value.prefix:
        case "eq":
            clause = within
        case "ne":
            clause = not_(within)
        case "gt" | "sa":
            clause = number > value.number
        case "lt" | "eb":
            clause = number < value.number
        case "ge":
            clause = number >= value.number
        case "le":
            clause = number <= value.number
        case _:  # ap
            clause = and_(number >= value.number - slack, number <= value.number + slack)
    if value.system is not None:
        clause = and_(clause, QuantityIndex.system == value.system)
    if value.code is not None:
        clause = and_(clause, QuantityIndex.code == value.code)
    return clause


def _reference_clause(value: ReferenceValue) -> Clause[bool]:
    clause = ReferenceIndex.target_id == value.target_id
    if value.target_type:
        clause = and_(
            clause,
            or_(
                ReferenceIndex.target_type == value.target_type,
                ReferenceIndex.target_type.is_(None),
            ),
        )
    return clause


def _value_clause(criterion: Criterion, value: Any) -> Clause[bool]:
    match value:
        case TokenValue():
            return _token_clause(value)
        case DateValue():
            return _date_clause(value)
        case ReferenceValue():
            return _reference_clause(value)
        case QuantityValue():
            return _quantity_clause(value)
        case _:
            return _string_clause(criterion.modifier, str(value))


def _chain_clause(resource_type: str, criterion: Criterion, visible: Visible) -> Clause[bool]:
    """The reference's target must be a visible resource meeting the chained criterion."""
    alternatives = []
    for target_type, inner in criterion.chain:
        targets = (
            select(StoredResource.res_id)
            .where(
                StoredResource.res_type == target_type,
                StoredResource.deleted.is_(False),
                visible(target_type),
                _criterion_clause(target_type, inner, visible),
            )
            .correlate(None)
        )
        alternatives.append(
            and_(
                or_(
                    ReferenceIndex.target_type == target_type,
                    ReferenceIndex.target_type.is_(None),
                ),
                ReferenceIndex.target_id.in_(targets),
            )
        )
    refs = select(ReferenceIndex.resource_pk).where(
        ReferenceIndex.res_type == resource_type,
        ReferenceIndex.param == criterion.param.name,
        or_(*alternatives),
    )
    return StoredResource.pk.in_(refs)


def _criterion_clause(
    resource_type: str, criterion: Criterion, visible: Visible
) -> ColumnElement[bool]:
    param = criterion.param
    if criterion.chain:
        return _chain_clause(resource_type, criterion, visible)
    if param.name == "_lastUpdated":
        dates = [v for v in criterion.values if isinstance(v, DateValue)]
        return or_(*(instant_clause(StoredResource.last_updated, v) for v in dates))
    if param.name == "_id":
        ids = [v.code for v in criterion.values if isinstance(v, TokenValue) and v.code]
        clause = StoredResource.res_id.in_(ids)
        return not_(clause) if criterion.modifier == "not" else clause
    if param.name == "_security":
        tokens = [(v.system, v.code) for v in criterion.values if isinstance(v, TokenValue)]
        if criterion.modifier == "missing":
            present = StoredResource.pk.in_(labelling.labelled_pks(None))
            return not_(present) if criterion.values[0] == "true" else present
        hit = StoredResource.pk.in_(labelling.labelled_pks(tokens))
        return not_(hit) if criterion.modifier == "not" else hit
    table = INDEX_TABLE_OF_TYPE.get(param.type)
    if table is None:
        return false()
    scope = and_(table.res_type == resource_type, table.param == param.name)
    if criterion.modifier == "missing":
        present = StoredResource.pk.in_(select(table.resource_pk).where(scope))
        return not_(present) if criterion.values[0] == "true" else present
    matches = or_(*(_value_clause(criterion, v) for v in criterion.values))
    hit = StoredResource.pk.in_(select(table.resource_pk).where(scope, matches))
    if criterion.modifier == "not":
        return not_(hit)
    return hit


def filtered(
    resource_type: str, request: SearchRequest, visible: Visible | ColumnElement[bool]
) -> Select[Any]:
    """`visible` is per type (chains reach other types), or one clause for every type."""
    if isinstance(visible, ColumnElement):
        clause = visible
        visible = lambda _type: clause  # noqa: E731
    query = select(StoredResource).where(
        StoredResource.res_type == resource_type,
        StoredResource.deleted.is_(False),
        visible(resource_type),
    )
    for criterion in request.criteria:
        query = query.where(_criterion_clause(resource_type, criterion, visible))
    return query


def ordered(query: Select[Any], sort: str | None) -> Select[Any]:
    """A plain order for callers that do not page (conditional operations)."""
    if sort == "-_lastUpdated":
        return query.order_by(StoredResource.last_updated.desc(), StoredResource.pk.desc())
    if sort == "_lastUpdated":
        return query.order_by(StoredResource.last_updated, StoredResource.pk)
    if sort == "_id":
        return query.order_by(StoredResource.res_id)
    return query.order_by(StoredResource.pk)


def count(session: Any, query: Select[Any]) -> int:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total or 0)


# ---- sorting and keyset paging ------------------------------------------------------------

_SORT_COLUMNS: dict[ParamType, Any] = {
    ParamType.STRING: StringIndex.value,
    ParamType.TOKEN: TokenIndex.code,
    ParamType.DATE: DateIndex.low,
}


def _keys(resource_type: str, sort: Sequence[SortKey]) -> list[Key]:
    """Each sort key, then the pk. A parameter sorts by its least indexed value; resources
    without one come last in either direction (a 0/1 key before the value)."""
    keys: list[Key] = []
    for key in sort:
        name = key.param.name
        if name == "_lastUpdated":
            keys.append(Key(StoredResource.last_updated, key.descending, is_date=True))
            continue
        if name == "_id":
            keys.append(Key(StoredResource.res_id, key.descending))
            continue
        column = _SORT_COLUMNS[key.param.type]
        table = column.class_
        least = (
            select(func.min(column))
            .where(
                table.resource_pk == StoredResource.pk,
                table.res_type == resource_type,
                table.param == name,
            )
            .correlate(StoredResource)
            .scalar_subquery()
        )
        keys.append(Key(case((least.is_(None), 1), else_=0), descending=False))
        keys.append(Key(least, key.descending, is_date=key.param.type is ParamType.DATE))
    keys.append(Key(StoredResource.pk, descending=False))
    return keys


@dataclass(frozen=True)
class Page:
    rows: list[StoredResource]
    next_token: str | None
    previous_token: str | None


def page(
    session: Session, base: Select[Any], *, resource_type: str, request: SearchRequest
) -> Page:
    """One page of `base` in the requested order, from `_page_token` (or `_offset`)."""
    found = keyset.page(
        session,
        base,
        _keys(resource_type, request.sort_keys),
        count=request.count,
        page_token=request.page_token,
        offset=request.offset,
    )
    return Page(found.rows, found.next_token, found.previous_token)


# ---- _include and _revinclude ------------------------------------------------------------


def _live(resource_type: str, visible: Visible) -> list[ColumnElement[bool]]:
    return [
        StoredResource.res_type == resource_type,
        StoredResource.deleted.is_(False),
        visible(resource_type),
    ]


def included(
    session: Session,
    matches: Sequence[StoredResource],
    includes: Sequence[Include],
    *,
    targets_of: Callable[[Include], Sequence[str]],
    visible: Visible,
) -> list[StoredResource]:
    """What the matches' reference parameters point at, among visible resources."""
    if not matches or not includes:
        return []
    found: list[StoredResource] = []
    pks = [m.pk for m in matches]
    for include in includes:
        scope = [
            ReferenceIndex.resource_pk.in_(pks),
            ReferenceIndex.res_type == include.source_type,
        ]
        if include.param is not None:
            scope.append(ReferenceIndex.param == include.param.name)
        for target_type in targets_of(include):
            refs = select(ReferenceIndex.target_id).where(
                *scope,
                or_(
                    ReferenceIndex.target_type == target_type,
                    ReferenceIndex.target_type.is_(None),
                ),
            )
            found += session.scalars(
                select(StoredResource).where(
                    *_live(target_type, visible), StoredResource.res_id.in_(refs)
                )
            ).all()
    return found


def rev_included(
    session: Session,
    resource_type: str,
    matches: Sequence[StoredResource],
    includes: Sequence[Include],
    *,
    visible: Visible,
) -> list[StoredResource]:
    """Visible resources whose reference parameter points at one of the matches."""
    if not matches or not includes:
        return []
    ids = [m.res_id for m in matches]
    found: list[StoredResource] = []
    for include in includes:
        refs = select(ReferenceIndex.resource_pk).where(
            ReferenceIndex.res_type == include.source_type,
            ReferenceIndex.target_id.in_(ids),
            or_(ReferenceIndex.target_type == resource_type, ReferenceIndex.target_type.is_(None)),
        )
        if include.param is not None:
            refs = refs.where(ReferenceIndex.param == include.param.name)
        found += session.scalars(
            select(StoredResource).where(
                *_live(include.source_type, visible), StoredResource.pk.in_(refs)
            )
        ).all()
    return found
