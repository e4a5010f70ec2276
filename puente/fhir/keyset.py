"""Keyset paging, shared by every search that pages (the store, the audit trail).

A page token carries the sort-key values of a page's last (or first) row and which way to
read from it, never an offset: a row inserted or deleted before the page does not shift
it, so `next` and `previous` links stay correct while data changes. The last key must be
unique (a primary key), so that every row has one place in the order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, false, or_
from sqlalchemy import and_ as all_of
from sqlalchemy.orm import Session

from puente.errors import InvalidRequest, Issue
from puente.fhir.search import decode_cursor, encode_cursor
from translation.i18n import N_


@dataclass(frozen=True)
class Key:
    expr: Any  # a column or a scalar subquery
    descending: bool
    is_date: bool = False


@dataclass(frozen=True)
class KeysetPage:
    rows: list[Any]
    next_token: str | None
    previous_token: str | None


def _bad_token() -> InvalidRequest:
    return InvalidRequest(issues=[Issue(N_("error.search_value_invalid"), {"name": "_page_token"})])


def _past(keys: Sequence[Key], values: Sequence[Any], *, before: bool) -> ColumnElement[bool]:
    """Rows strictly after (or before) the row whose key values are `values`."""
    alternatives = []
    equal: list[ColumnElement[bool]] = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            strict: ColumnElement[bool] = false()
            same = key.expr.is_(None)
        else:
            upward = key.descending == before
            strict = key.expr > value if upward else key.expr < value
            same = key.expr == value
        alternatives.append(all_of(*equal, strict))
        equal.append(same)
    return or_(*alternatives)


def _decode(keys: Sequence[Key], token: str) -> tuple[list[Any], bool]:
    values, before = decode_cursor(token)
    if len(values) != len(keys):
        raise _bad_token()
    try:
        decoded = [
            dt.datetime.fromisoformat(v) if key.is_date and v is not None else v
            for key, v in zip(keys, values, strict=True)
        ]
    except (TypeError, ValueError) as exc:
        raise _bad_token() from exc
    return decoded, before


def _cursor(keys: Sequence[Key], row: Sequence[Any], *, before: bool) -> str:
    values = [
        v.isoformat() if key.is_date and v is not None else v
        for key, v in zip(keys, row, strict=True)
    ]
    return encode_cursor(values, before=before)


def page(
    session: Session,
    base: Select[Any],
    keys: Sequence[Key],
    *,
    count: int,
    page_token: str | None,
    offset: int = 0,
) -> KeysetPage:
    """One page of `base` (a select of one entity) in the order of `keys`, from
    `page_token`, or from `offset` for a first page asked for that way."""
    query = base.add_columns(*(k.expr for k in keys))
    before = False
    if page_token:
        values, before = _decode(keys, page_token)
        query = query.where(_past(keys, values, before=before))
    order = [
        k.expr.desc() if k.descending != before else k.expr.asc() for k in keys
    ]  # read backwards for a `previous` page, then turn the rows round
    query = query.order_by(*order).limit(count + 1)
    if not page_token and offset:
        query = query.offset(offset)
    fetched = [tuple(r) for r in session.execute(query).all()]
    more = len(fetched) > count
    fetched = fetched[:count]
    if before:
        fetched.reverse()
    if not fetched:
        return KeysetPage([], None, None)
    has_next = more if not before else True
    has_previous = more if before else bool(page_token or offset)
    return KeysetPage(
        rows=[r[0] for r in fetched],
        next_token=_cursor(keys, fetched[-1][1:], before=False) if has_next else None,
        previous_token=_cursor(keys, fetched[0][1:], before=True) if has_previous else None,
    )
