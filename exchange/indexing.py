"""What a resource puts into the search index tables: pure functions, no I/O.

Values are read from dotted element paths over the JSON (lists are walked through), and
turned into rows by parameter type (R4 3.1.1.5 "search parameter types").
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterator
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


def _strings(value: Any) -> Iterator[str]:
    """A string, or the string parts of a HumanName, Address or similar complex value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("use", "period", "extension", "id", "type"):
                continue
            if isinstance(item, str):
                yield item
            elif isinstance(item, list):
                yield from (s for s in item if isinstance(s, str))


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


def _tokens(value: Any) -> Iterator[TokenRow]:
    """Codes are cut to the length of the index column."""
    if isinstance(value, bool):
        yield TokenRow(None, "true" if value else "false")
    elif isinstance(value, str):
        yield TokenRow(None, value[:MAX_STRING])
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            for coding in value.get("coding") or []:
                yield from _tokens(coding)
        elif "code" in value:  # Coding
            yield TokenRow(value.get("system"), str(value["code"])[:MAX_STRING])
        elif "value" in value:  # Identifier, ContactPoint
            yield TokenRow(value.get("system"), str(value["value"])[:MAX_STRING])


def _dates(value: Any) -> Iterator[DateRow]:
    if isinstance(value, str):
        try:
            yield DateRow(*date_range(value))
        except ValueError:
            return
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        low = (
            date_range(value["start"])[0]
            if value.get("start")
            else dt.datetime.min.replace(tzinfo=dt.UTC)
        )
        high = (
            date_range(value["end"])[1]
            if value.get("end")
            else dt.datetime.max.replace(tzinfo=dt.UTC)
        )
        yield DateRow(low, high)


def _references(value: Any) -> Iterator[ReferenceRow]:
    if not isinstance(value, dict):
        return
    ref = value.get("reference")
    if not isinstance(ref, str) or ref.startswith("#"):
        return
    parts = ref.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        yield ReferenceRow(parts[-2], parts[-1])
    else:
        yield ReferenceRow(None, parts[-1])


def _quantities(value: Any) -> Iterator[QuantityRow]:
    if isinstance(value, dict) and "value" in value:
        try:
            number = Decimal(str(value["value"]))
        except InvalidOperation:
            return
        yield QuantityRow(number, value.get("system"), value.get("code") or value.get("unit"))


def index_rows(resource: dict[str, Any], param: SearchParam) -> list[Row]:
    rows: list[Row] = []
    for path in param.paths:
        steps = _steps(path)
        if steps and steps[0] not in resource:
            continue
        for value in _values(resource, steps):
            match param.type:
                case ParamType.STRING:
                    rows += [
                        StringRow(fold(s)[:MAX_STRING], s[:MAX_STRING])
                        for s in _strings(value)
                        if s.strip()
                    ]
                case ParamType.TOKEN | ParamType.URI:
                    rows += [r for r in _tokens(value) if r.code]
                case ParamType.DATE:
                    rows += list(_dates(value))
                case ParamType.REFERENCE:
                    rows += list(_references(value))
                case ParamType.QUANTITY | ParamType.NUMBER:
                    rows += list(_quantities(value))
    return list(dict.fromkeys(rows))
