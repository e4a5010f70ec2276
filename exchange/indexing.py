"""What a resource puts into the search index tables: pure functions, no I/O.

Values are read from dotted element paths over the JSON (lists are walked through), and
turned into rows by parameter type (R4 3.1.1.5 "search parameter types").
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple

from puente.fhir.dates import date_range
from puente.fhir.search import ParamType, SearchParam

MAX_STRING = 255


def fold(text: str) -> str:
    """Accent- and case-folded text: `José Núñez` -> `jose nunez`."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def values_at(node: Any, path: str) -> Iterator[Any]:
    """Every value at a dotted path, walking through lists on the way."""
    return iter(_values(node, _steps(path)))


@lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def _values(node: Any, steps: tuple[str, ...]) -> list[Any]:
    """`values_at` as a list, level by level rather than by recursion: indexing reads
    every parameter's paths of every resource written, most of them absent."""
    level = node if isinstance(node, list) else [node]
    for step in steps:
        following: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                found = item.get(step)
                if isinstance(found, list):
                    following.extend(found)
                elif found is not None:
                    following.append(found)
            elif isinstance(item, list):  # a list of lists: not FHIR JSON, walked through
                following.extend(_values(item, (step,)))
        if not following:
            return following
        level = following
    values: list[Any] = []
    for value in level:
        if isinstance(value, list):
            values.extend(_values(value, ()))
        elif value is not None:
            values.append(value)
    return values


class StringRow(NamedTuple):
    value: str
    exact: str


class TokenRow(NamedTuple):
    system: str | None
    code: str


class DateRow(NamedTuple):
    low: dt.datetime
    high: dt.datetime


class ReferenceRow(NamedTuple):
    target_type: str | None
    target_id: str


class QuantityRow(NamedTuple):
    value: Decimal
    system: str | None
    code: str | None


# Named tuples (hashed and built in C): a bulk import indexes millions of rows. The fields
# are in the order of the index tables' columns after (resource_pk, res_type, param).
Row = StringRow | TokenRow | DateRow | ReferenceRow | QuantityRow


_NOT_TEXT = frozenset({"use", "period", "extension", "id", "type"})


def _add_strings(value: Any, rows: list[Row]) -> None:
    """A string, or the string parts of a HumanName, Address or similar complex value."""
    if isinstance(value, str):
        _add_string(value, rows)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _NOT_TEXT:
                continue
            if isinstance(item, str):
                _add_string(item, rows)
            elif isinstance(item, list):
                for text in item:
                    if isinstance(text, str):
                        _add_string(text, rows)


def _add_string(text: str, rows: list[Row]) -> None:
    if text.strip():
        rows.append(StringRow(fold(text)[:MAX_STRING], text[:MAX_STRING]))


def _add_tokens(value: Any, rows: list[Row]) -> None:
    """Codes are cut to the length of the index column; an empty code is no row."""
    if isinstance(value, bool):
        rows.append(TokenRow(None, "true" if value else "false"))
    elif isinstance(value, str):
        if value:
            rows.append(TokenRow(None, value[:MAX_STRING]))
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            for coding in value.get("coding") or []:
                _add_tokens(coding, rows)
        elif "code" in value:  # Coding
            code = str(value["code"])[:MAX_STRING]
            if code:
                rows.append(TokenRow(value.get("system"), code))
        elif "value" in value:  # Identifier, ContactPoint
            code = str(value["value"])[:MAX_STRING]
            if code:
                rows.append(TokenRow(value.get("system"), code))


_OPEN_LOW = dt.datetime.min.replace(tzinfo=dt.UTC)
_OPEN_HIGH = dt.datetime.max.replace(tzinfo=dt.UTC)


def _add_dates(value: Any, rows: list[Row]) -> None:
    if isinstance(value, str):
        try:
            rows.append(DateRow(*date_range(value)))
        except ValueError:
            return
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        low = date_range(value["start"])[0] if value.get("start") else _OPEN_LOW
        high = date_range(value["end"])[1] if value.get("end") else _OPEN_HIGH
        rows.append(DateRow(low, high))


def _add_references(value: Any, rows: list[Row]) -> None:
    if not isinstance(value, dict):
        return
    ref = value.get("reference")
    if not isinstance(ref, str) or ref.startswith("#"):
        return
    parts = ref.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        rows.append(ReferenceRow(parts[-2], parts[-1]))
    else:
        rows.append(ReferenceRow(None, parts[-1]))


def _add_quantities(value: Any, rows: list[Row]) -> None:
    if isinstance(value, dict) and "value" in value:
        try:
            number = Decimal(str(value["value"]))
        except InvalidOperation:
            return
        rows.append(
            QuantityRow(number, value.get("system"), value.get("code") or value.get("unit"))
        )


# What each parameter type makes of one value: its rows, appended (a bulk import indexes
# hundreds of thousands of values, so no generators and no per-value type dispatch).
_ADDERS: dict[ParamType, Callable[[Any, list[Row]], None]] = {
    ParamType.STRING: _add_strings,
    ParamType.TOKEN: _add_tokens,
    ParamType.URI: _add_tokens,
    ParamType.DATE: _add_dates,
    ParamType.REFERENCE: _add_references,
    ParamType.QUANTITY: _add_quantities,
    ParamType.NUMBER: _add_quantities,
}


def index_rows(resource: dict[str, Any], param: SearchParam) -> list[Row]:
    """The parameter's rows for the resource, each once, in the order first found."""
    add = _ADDERS.get(param.type)
    if add is None:
        return []
    rows: list[Row] = []
    for path in param.paths:
        steps = _steps(path)
        if len(steps) == 1:  # most paths: a top-level element, a value or a list of them
            found = resource.get(steps[0])
            if isinstance(found, list):
                for value in found:
                    if isinstance(value, list):
                        for inner in _values(value, ()):
                            add(inner, rows)
                    elif value is not None:
                        add(value, rows)
            elif found is not None:
                add(found, rows)
            continue
        if steps and steps[0] not in resource:
            continue
        for value in _values(resource, steps):
            add(value, rows)
    return list(dict.fromkeys(rows)) if len(rows) > 1 else rows
