"""What a resource puts into the search index tables: pure functions, no I/O.

Values are read from dotted element paths over the JSON (lists are walked through), and
turned into rows by parameter type (R4 3.1.1.5 "search parameter types").
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

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
    if isinstance(node, list):
        for item in node:
            yield from values_at(item, path)
        return
    if not path:
        if node is not None:
            yield node
        return
    if not isinstance(node, dict):
        return
    head, _, rest = path.partition(".")
    yield from values_at(node.get(head), rest)


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


@dataclass(frozen=True)
class StringRow:
    value: str
    exact: str


@dataclass(frozen=True)
class TokenRow:
    system: str | None
    code: str


@dataclass(frozen=True)
class DateRow:
    low: dt.datetime
    high: dt.datetime


@dataclass(frozen=True)
class ReferenceRow:
    target_type: str | None
    target_id: str


@dataclass(frozen=True)
class QuantityRow:
    value: Decimal
    system: str | None
    code: str | None


Row = StringRow | TokenRow | DateRow | ReferenceRow | QuantityRow


def _tokens(value: Any) -> Iterator[TokenRow]:
    if isinstance(value, bool):
        yield TokenRow(None, "true" if value else "false")
    elif isinstance(value, str):
        yield TokenRow(None, value)
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            for coding in value.get("coding") or []:
                yield from _tokens(coding)
        elif "code" in value:  # Coding
            yield TokenRow(value.get("system"), str(value["code"]))
        elif "value" in value:  # Identifier, ContactPoint
            yield TokenRow(value.get("system"), str(value["value"]))


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
        for value in values_at(resource, path):
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
