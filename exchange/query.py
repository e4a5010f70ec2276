"""Search over the index tables: criteria become `pk IN (subquery)` clauses, never JSON scans."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement as Clause

from exchange.indexing import fold
from exchange.models import (
    DateIndex,
    ReferenceIndex,
    StoredResource,
    StringIndex,
    TokenIndex,
)
from puente.fhir.search import (
    Criterion,
    DateValue,
    ParamType,
    ReferenceValue,
    SearchRequest,
    TokenValue,
)
from puente.fhir.sql import LIKE_ESCAPE, approximate, instant_clause, like_escape


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
    within = and_(low >= value.low, high <= value.high)
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


def _reference_clause(value: ReferenceValue) -> Clause[bool]:
    clause = ReferenceIndex.target_id == value.target_id
    if value.target_type:
        clause = and_(clause, ReferenceIndex.target_type == value.target_type)
    return clause


_TABLES: dict[ParamType, Any] = {
    ParamType.STRING: StringIndex,
    ParamType.TOKEN: TokenIndex,
    ParamType.URI: TokenIndex,
    ParamType.DATE: DateIndex,
    ParamType.REFERENCE: ReferenceIndex,
}


def _value_clause(criterion: Criterion, value: Any) -> Clause[bool]:
    match value:
        case TokenValue():
            return _token_clause(value)
        case DateValue():
            return _date_clause(value)
        case ReferenceValue():
            return _reference_clause(value)
        case _:
            return _string_clause(criterion.modifier, str(value))


def _criterion_clause(resource_type: str, criterion: Criterion) -> ColumnElement[bool]:
    param = criterion.param
    if param.name == "_id":
        ids = [v.code for v in criterion.values if isinstance(v, TokenValue) and v.code]
        clause = StoredResource.res_id.in_(ids)
        return not_(clause) if criterion.modifier == "not" else clause
    table = _TABLES.get(param.type)
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
    resource_type: str, request: SearchRequest, visible: ColumnElement[bool]
) -> Select[Any]:
    query = select(StoredResource).where(
        StoredResource.res_type == resource_type, StoredResource.deleted.is_(False), visible
    )
    for criterion in request.criteria:
        if criterion.param.name == "_lastUpdated":
            dates = [v for v in criterion.values if isinstance(v, DateValue)]
            query = query.where(
                or_(*(instant_clause(StoredResource.last_updated, v) for v in dates))
            )
            continue
        query = query.where(_criterion_clause(resource_type, criterion))
    return query


def count(session: Any, query: Select[Any]) -> int:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total or 0)


def ordered(query: Select[Any], sort: str | None) -> Select[Any]:
    if sort == "-_lastUpdated":
        return query.order_by(StoredResource.last_updated.desc(), StoredResource.pk.desc())
    if sort == "_lastUpdated":
        return query.order_by(StoredResource.last_updated, StoredResource.pk)
    if sort == "_id":
        return query.order_by(StoredResource.res_id)
    return query.order_by(StoredResource.pk)
