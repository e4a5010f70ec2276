"""Search parameters: their definitions, and a request's query parsed into criteria.

Each domain declares its parameters (`SearchParam`); the parser checks names, modifiers
and values and returns criteria that the domain turns into SQL over its index tables.
An unknown parameter is a 400 unless the client says `Prefer: handling=lenient`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from puente.errors import InvalidRequest, Issue
from puente.fhir.dates import date_range
from translation.i18n import N_

DEFAULT_COUNT = 20
MAX_COUNT = 500
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# Result parameters every search understands (R4 3.1.1.5.7 and paging).
SORTS = frozenset({"_lastUpdated", "-_lastUpdated", "_id"})
CONTROL = frozenset(
    {
        "_count",
        "_offset",
        "_format",
        "_pretty",
        "_total",
        "_totalMethod",
        "_sort",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_page_token",
    }
)
TOTALS = frozenset({"none", "estimate", "accurate"})
# Parameters that `_sort` may name besides `_id` and `_lastUpdated` (their index's least value).
SORTABLE = frozenset({"string", "token", "date"})


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


@dataclass(frozen=True)
class QuantityValue:
    """`[prefix]number|system|code`; `low`/`high` bound the number's precision (R4 3.1.1.4.3:
    `5.4` means [5.35, 5.45))."""

    prefix: str
    number: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None


Value = str | TokenValue | DateValue | ReferenceValue | QuantityValue


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are ORed; criteria are ANDed.

    A chained parameter (`subject:Patient.name=x`) has no values of its own: `chain` holds,
    per target type, the criterion that the referenced resource must meet.
    """

    param: SearchParam
    modifier: str | None
    values: tuple[Value, ...]
    chain: tuple[tuple[str, Criterion], ...] = ()


@dataclass(frozen=True)
class SortKey:
    param: SearchParam
    descending: bool


@dataclass(frozen=True)
class Include:
    """`_include=Observation:subject:Patient` or `_revinclude=Provenance:target`."""

    source_type: str
    param: SearchParam | None  # None: `*`, every reference parameter of the source type
    target_type: str | None


# The other types' parameters, for chains and includes: `None` for a type not served.
Resolver = Callable[[str], Sequence[SearchParam] | None]


@dataclass
class SearchRequest:
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    total: str | None = None
    sort: str | None = None
    sort_keys: list[SortKey] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)
    include: list[Include] = field(default_factory=list)
    revinclude: list[Include] = field(default_factory=list)
    page_token: str | None = None
    summary_count: bool = False  # `_summary=count`: the total only, no entries
    ignored: list[str] = field(default_factory=list)  # names dropped by lenient handling
    used: list[tuple[str, str]] = field(default_factory=list)  # for the `self` link


def conditional_criteria(text: str) -> list[tuple[str, str]]:
    """The search of an `If-None-Exist` header or `ifNoneExist` entry (`identifier=x|y`;
    a leading `Patient?` is accepted too)."""
    return parse_qsl(text.split("?", 1)[-1], keep_blank_values=True)


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


QUANTITY_PREFIXES = DATE_PREFIXES


def _parse_quantity(name: str, raw: str) -> QuantityValue:
    prefix = raw[:2] if raw[:2] in QUANTITY_PREFIXES else "eq"
    text = raw[2:] if raw[:2] in QUANTITY_PREFIXES else raw
    number_text, *unit = text.split("|")
    if len(unit) not in (0, 2):
        raise _bad(name, N_("error.search_quantity_invalid"))
    try:
        number = Decimal(number_text)
    except InvalidOperation as exc:
        raise _bad(name, N_("error.search_quantity_invalid")) from exc
    if not number.is_finite():
        raise _bad(name, N_("error.search_quantity_invalid"))
    exponent = number.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)
    system, code = (unit[0] or None, unit[1] or None) if unit else (None, None)
    return QuantityValue(prefix, number, number - half, number + half, system, code)


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
        case ParamType.QUANTITY:
            return _parse_quantity(name, raw)
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


def _unknown(key: str, param: SearchParam | None) -> InvalidRequest:
    message = N_("error.search_param_unknown") if param is None else N_("error.search_modifier")
    return InvalidRequest(issues=[Issue(message, {"name": key[:64]}, code="not-supported")])


def _chain(
    key: str, param: SearchParam, modifier: str, raw: str, resolve: Resolver | None
) -> Criterion:
    """`subject:Patient.name=x`, `patient.name=x`: one level (R4 3.1.1.4.10)."""
    head, _, chained = modifier.partition(".")
    if param.type is not ParamType.REFERENCE or resolve is None or "." in chained:
        raise _unknown(key, param)
    target_types = (head,) if head else param.targets
    if head and param.targets and head not in param.targets:
        raise _unknown(key, param)
    name, _, inner_modifier = chained.partition(":")
    steps = []
    for target_type in target_types:
        inner = {p.name: p for p in resolve(target_type) or ()}.get(name)
        if inner is None or (
            inner_modifier and inner_modifier not in MODIFIERS.get(inner.type, frozenset())
        ):
            continue
        values = tuple(_parse_value(inner, inner_modifier or None, v) for v in _split_values(raw))
        steps.append((target_type, Criterion(inner, inner_modifier or None, values)))
    if not steps:
        raise _unknown(key, None)
    return Criterion(param, None, (), tuple(steps))


def _criterion(
    key: str, raw: str, known: dict[str, SearchParam], resolve: Resolver | None
) -> Criterion:
    if "." in key:
        name, _, rest = key.partition(".")
        name, _, head = name.partition(":")
        param = known.get(name)
        if param is None:
            raise _unknown(key, None)
        return _chain(key, param, f"{head}.{rest}", raw, resolve)
    name, _, modifier = key.partition(":")
    param = known.get(name)
    if param is None or (modifier and modifier not in MODIFIERS.get(param.type, frozenset())):
        raise _unknown(key, param)
    values = tuple(_parse_value(param, modifier or None, v) for v in _split_values(raw))
    return Criterion(param, modifier or None, values)


def _sort_keys(raw: str, known: dict[str, SearchParam], by_params: bool) -> list[SortKey]:
    if not by_params:  # a domain without index tables orders by its own columns
        if raw not in SORTS:
            raise _bad("_sort", N_("error.search_sort_unsupported"))
        return []
    keys = []
    for part in raw.split(","):
        param = known.get(part.removeprefix("-"))
        if param is None or not (
            param.name in ("_id", "_lastUpdated") or param.type.value in SORTABLE
        ):
            raise _bad("_sort", N_("error.search_sort_unsupported"))
        keys.append(SortKey(param, part.startswith("-")))
    return keys


def _include(
    raw: str, resource_type: str | None, resolve: Resolver | None, *, reverse: bool
) -> Include:
    """`Source:param[:Target]`; `*` alone or as the parameter names them all."""
    name = "_revinclude" if reverse else "_include"
    parts = raw.split(":")
    if resolve is None or resource_type is None or not 2 <= len(parts) <= 3:
        raise _bad(name, N_("error.search_include_invalid"))
    source, param_name = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not reverse and source != resource_type:
        raise _bad(name, N_("error.search_include_invalid"))
    params = resolve(source)
    if params is None:
        raise _bad(name, N_("error.search_include_invalid"))
    if param_name == "*":
        return Include(source, None, target)
    param = next((p for p in params if p.name == param_name), None)
    if param is None or param.type is not ParamType.REFERENCE:
        raise _bad(name, N_("error.search_include_invalid"))
    if target and param.targets and target not in param.targets:
        raise _bad(name, N_("error.search_include_invalid"))
    if reverse and param.targets and resource_type not in param.targets:
        raise _bad(name, N_("error.search_include_invalid"))
    return Include(source, param, target)


def _control(
    request: SearchRequest,
    name: str,
    raw: str,
    known: dict[str, SearchParam],
    resource_type: str | None,
    resolve: Resolver | None,
) -> bool:
    """Reads a result parameter into `request`; False if lenient handling dropped it."""
    match name:
        case "_count":
            request.count = _int_param(name, raw, 0, MAX_COUNT)
        case "_offset":
            request.offset = _int_param(name, raw, 0, 10_000_000)
        case "_total":
            if raw not in TOTALS:
                raise _bad(name)
            request.total = raw
        case "_totalMethod":
            # Not in R4: the form fhirpy's `.count()` sends (Aidbox's). Read as `_total`.
            total = {"count": "accurate", "estimate": "estimate", "none": "none"}.get(raw)
            if total is None:
                raise _bad(name)
            request.total = total
        case "_summary":
            if raw != "count":
                raise _bad(name, N_("error.search_summary_unsupported"))
            request.summary_count = True
        case "_sort":
            request.sort_keys = _sort_keys(raw, known, resolve is not None)
            request.sort = raw
        case "_elements":
            request.elements = [e.strip() for e in raw.split(",") if e.strip()]
        case "_include" | "_revinclude":
            reverse = name == "_revinclude"
            found = _include(raw, resource_type, resolve, reverse=reverse)
            (request.revinclude if reverse else request.include).append(found)
        case "_page_token":
            request.page_token = raw
    return True


def parse_search(
    items: Iterable[tuple[str, str]],
    params: Sequence[SearchParam],
    *,
    lenient: bool = False,
    resource_type: str | None = None,
    resolve: Resolver | None = None,
) -> SearchRequest:
    """`resolve` (the other types' parameters) enables chaining, `_include`/`_revinclude`
    and `_sort` by any string, token or date parameter of the type."""
    known = {p.name: p for p in params}
    request = SearchRequest()
    for key, raw in items:
        name = key.partition(":")[0]
        if name in CONTROL:
            try:
                _control(request, name, raw, known, resource_type, resolve)
            except InvalidRequest:
                if not lenient or name in ("_count", "_offset", "_page_token"):
                    raise
                request.ignored.append(key)
                continue
            # Paging parameters are the Page's to write into links, once.
            if name not in ("_format", "_offset", "_count", "_page_token"):
                request.used.append((key, raw))
            continue
        try:
            criterion = _criterion(key, raw, known, resolve)
        except InvalidRequest as exc:
            if lenient and exc.issues and exc.issues[0].code == "not-supported":
                request.ignored.append(key)
                continue
            raise
        request.criteria.append(criterion)
        request.used.append((key, raw))
    return request


def encode_cursor(values: Sequence[Any], *, before: bool = False) -> str:
    """An opaque page token: the sort-key values of a row, and which way to read from it."""
    text = json.dumps({"k": list(values), "b": before}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[list[Any], bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        keys, before = data["k"], data["b"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise _bad("_page_token") from exc
    if not isinstance(keys, list) or not isinstance(before, bool):
        raise _bad("_page_token")
    return keys, before
