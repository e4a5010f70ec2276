"""Search parameters: their definitions, and a request's query parsed into criteria.

Each domain declares its parameters (`SearchParam`); the parser checks names, modifiers
and values and returns criteria that the domain turns into SQL over its index tables.
An unknown parameter is a 400 unless the client says `Prefer: handling=lenient`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from puente.errors import InvalidRequest, Issue
from puente.fhir.dates import date_range
from translation.i18n import N_

DEFAULT_COUNT = 20
MAX_COUNT = 500
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# Result parameters every search understands (R4 3.1.1.5.7 and paging).
SORTS = frozenset({"_lastUpdated", "-_lastUpdated", "_id"})
CONTROL = frozenset({"_count", "_offset", "_format", "_pretty", "_total", "_sort", "_summary"})


class ParamType(StrEnum):
    STRING = "string"
    TOKEN = "token"  # noqa: S105 - a FHIR search parameter type, not a secret
    DATE = "date"
    REFERENCE = "reference"
    QUANTITY = "quantity"
    NUMBER = "number"
    URI = "uri"


MODIFIERS: dict[ParamType, frozenset[str]] = {
    ParamType.STRING: frozenset({"exact", "contains", "missing"}),
    ParamType.TOKEN: frozenset({"not", "missing"}),
    ParamType.DATE: frozenset({"missing"}),
    ParamType.REFERENCE: frozenset({"missing", "identifier"}),
    ParamType.QUANTITY: frozenset({"missing"}),
    ParamType.NUMBER: frozenset({"missing"}),
    ParamType.URI: frozenset({"missing", "below", "above"}),
}


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    documentation: str
    paths: tuple[str, ...] = ()  # dotted element paths the store indexes
    targets: tuple[str, ...] = ()  # reference target types


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system; "": explicitly no system (`|code`)
    code: str | None  # None: any code of the system (`system|`)


@dataclass(frozen=True)
class DateValue:
    prefix: str
    low: dt.datetime
    high: dt.datetime


@dataclass(frozen=True)
class ReferenceValue:
    target_type: str | None
    target_id: str


Value = str | TokenValue | DateValue | ReferenceValue


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are ORed; criteria are ANDed."""

    param: SearchParam
    modifier: str | None
    values: tuple[Value, ...]


@dataclass
class SearchRequest:
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    total: str | None = None
    sort: str | None = None
    summary_count: bool = False  # `_summary=count`: the total only, no entries
    ignored: list[str] = field(default_factory=list)  # names dropped by lenient handling
    used: list[tuple[str, str]] = field(default_factory=list)  # for the `self` link


def _split_values(raw: str) -> list[str]:
    """Comma separates alternatives; `\\,` is a literal comma (R4 3.1.1.5.3 escaping)."""
    out, current, escaped = [], [], False
    for char in raw:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


def _bad(name: str, key: str = N_("error.search_value_invalid")) -> InvalidRequest:
    return InvalidRequest(issues=[Issue(key, {"name": name}, code="invalid")])


def _parse_token(name: str, raw: str) -> TokenValue:
    if "|" not in raw:
        if not raw:
            raise _bad(name)
        return TokenValue(None, raw)
    system, _, code = raw.partition("|")
    if not system and not code:
        raise _bad(name)
    return TokenValue(system, code or None)


def _parse_date(name: str, raw: str) -> DateValue:
    prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
    text = raw[2:] if raw[:2] in DATE_PREFIXES else raw
    try:
        low, high = date_range(text)
    except ValueError as exc:
        raise _bad(name, N_("error.search_date_invalid")) from exc
    return DateValue(prefix, low, high)


def _parse_reference(name: str, raw: str, param: SearchParam) -> ReferenceValue:
    if not raw:
        raise _bad(name)
    parts = raw.rstrip("/").split("/")
    if len(parts) >= 2:
        target_type, target_id = parts[-2], parts[-1]
        if param.targets and target_type not in param.targets:
            raise _bad(name, N_("error.search_reference_type"))
        return ReferenceValue(target_type, target_id)
    if len(param.targets) == 1:
        return ReferenceValue(param.targets[0], raw)
    return ReferenceValue(None, raw)


def _parse_value(param: SearchParam, modifier: str | None, raw: str) -> Value:
    name = param.name
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise _bad(name)
        return raw
    match param.type:
        case ParamType.TOKEN:
            return _parse_token(name, raw)
        case ParamType.DATE:
            return _parse_date(name, raw)
        case ParamType.REFERENCE:
            return _parse_reference(name, raw, param)
        case _:
            if not raw:
                raise _bad(name)
            return raw


def _int_param(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise _bad(name) from exc
    if not low <= value <= high:
        raise _bad(name, N_("error.search_count_range"))
    return value


def parse_search(
    items: Iterable[tuple[str, str]],
    params: Sequence[SearchParam],
    *,
    lenient: bool = False,
) -> SearchRequest:
    known = {p.name: p for p in params}
    request = SearchRequest()
    for key, raw in items:
        name, _, modifier = key.partition(":")
        if name in CONTROL:
            if name == "_count":
                request.count = _int_param(name, raw, 0, MAX_COUNT)
            elif name == "_offset":
                request.offset = _int_param(name, raw, 0, 10_000_000)
            elif name == "_total":
                request.total = raw
            elif name == "_summary":
                if raw != "count":
                    if not lenient:
                        raise _bad(name, N_("error.search_summary_unsupported"))
                    request.ignored.append(key)
                    continue
                request.summary_count = True
            elif name == "_sort":
                if raw not in SORTS:
                    if not lenient:
                        raise _bad(name, N_("error.search_sort_unsupported"))
                    request.ignored.append(key)
                    continue
                request.sort = raw
            # Paging parameters are the Page's to write into links, once.
            if name not in ("_format", "_offset", "_count"):
                request.used.append((key, raw))
            continue
        param = known.get(name)
        modifier_ok = param is not None and (
            not modifier or modifier in MODIFIERS.get(param.type, frozenset())
        )
        if param is None or not modifier_ok:
            if lenient:
                request.ignored.append(key)
                continue
            message = (
                N_("error.search_param_unknown") if param is None else N_("error.search_modifier")
            )
            raise InvalidRequest(issues=[Issue(message, {"name": key[:64]}, code="not-supported")])
        values = tuple(_parse_value(param, modifier or None, v) for v in _split_values(raw))
        request.criteria.append(Criterion(param, modifier or None, values))
        request.used.append((key, raw))
    return request
