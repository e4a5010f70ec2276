"""History of a resource, a type, or everything the caller may see (R4 3.1.0.9).

Newest first; each entry carries the interaction that made the version (`request`) and its
outcome (`response`); a deletion is an entry with `request.method` DELETE and no resource.
What a caller sees is the disclosure gate's answer, version by version (a past version
carries the labels of its own codes).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from consent import service as labelling
from exchange.gate import gate_for
from exchange.models import ResourceVersion
from exchange.resources import STORE_TYPES
from exchange.service import capability, disclosed, load_visible
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction
from puente.db import utcnow
from puente.errors import InvalidRequest, Issue
from puente.fhir.bundle import Page
from puente.fhir.dates import date_range, instant
from puente.fhir.responses import weak_etag
from puente.fhir.search import DEFAULT_COUNT, MAX_COUNT
from translation.i18n import N_

_IGNORED = frozenset({"_format", "_pretty"})
_STATUS = {"POST": "201 Created", "DELETE": "204 No Content"}


@dataclass
class HistoryRequest:
    since: dt.datetime | None = None
    count: int = DEFAULT_COUNT
    offset: int = 0
    used: list[tuple[str, str]] = field(default_factory=list)  # for the paging links
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HistoryPage:
    versions: list[ResourceVersion]
    total: int
    # (pk, version) -> the content shown: the version with its security labels merged
    shown: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)


def _bad(name: str, key: str = N_("error.search_value_invalid")) -> InvalidRequest:
    return InvalidRequest(issues=[Issue(key, {"name": name}, code="invalid")])


def _bounded(name: str, raw: str, high: int) -> int:
    if not raw.isdigit():
        raise _bad(name)
    value = int(raw)
    if value > high:
        raise _bad(name, N_("error.search_count_range"))
    return value


def parse_history(items: Iterable[tuple[str, str]], *, lenient: bool) -> HistoryRequest:
    request = HistoryRequest()
    for name, raw in items:
        if name == "_since":
            try:
                request.since = date_range(raw)[0]
            except ValueError as exc:
                raise _bad(name, N_("error.search_date_invalid")) from exc
            request.used.append((name, raw))
        elif name == "_count":
            request.count = _bounded(name, raw, MAX_COUNT)
        elif name == "_offset":
            request.offset = _bounded(name, raw, 10_000_000)
        elif name in _IGNORED:
            continue
        elif lenient:
            request.ignored.append(name)
        else:
            raise InvalidRequest(
                issues=[
                    Issue(
                        N_("error.search_param_unknown"), {"name": name[:64]}, code="not-supported"
                    )
                ]
            )
    return request


def _page(
    session: Session, caller: Caller, statement: Select[Any], request: HistoryRequest
) -> HistoryPage:
    """A page of `statement` (versions, inside which the gate decides each one)."""
    if request.since is not None:
        statement = statement.where(ResourceVersion.last_updated >= request.since)
    within = statement.whereclause
    assert within is not None
    statement = statement.where(gate_for(session, caller).versions_clause(within))
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    ordered = statement.order_by(
        ResourceVersion.last_updated.desc(),
        ResourceVersion.resource_pk.desc(),
        ResourceVersion.version.desc(),
    )
    rows = session.scalars(ordered.offset(request.offset).limit(request.count)).all()
    live = [(v.resource_pk, v.version, v.content) for v in rows if v.content is not None]
    labelled = labelling.versions_labelled(session, live)
    shown = disclosed(
        session,
        caller,
        [(pk, version, c) for (pk, version, _), c in zip(live, labelled, strict=True)],
        subtype="history",
    )
    return HistoryPage(
        list(rows), int(total), {(p, v): c for (p, v, _), c in zip(live, shown, strict=True)}
    )


def instance_history(
    session: Session, caller: Caller, *, resource_type: str, res_id: str, request: HistoryRequest
) -> HistoryPage:
    capability(resource_type)
    caller.require(resource_type, Interaction.READ)
    stored = load_visible(session, caller, resource_type, res_id)
    statement = select(ResourceVersion).where(ResourceVersion.resource_pk == stored.pk)
    return _page(session, caller, statement, request)


def type_history(
    session: Session, caller: Caller, *, resource_type: str, request: HistoryRequest
) -> HistoryPage:
    capability(resource_type)
    caller.require(resource_type, Interaction.READ)
    statement = select(ResourceVersion).where(ResourceVersion.res_type == resource_type)
    return _page(session, caller, statement, request)


def system_history(session: Session, caller: Caller, *, request: HistoryRequest) -> HistoryPage:
    """Every type the caller's scopes let it read; none is a 403 like any other read."""
    readable = [t for t in STORE_TYPES if caller.may(t, Interaction.READ)]
    if not readable:
        caller.require("*", Interaction.READ)
    statement = select(ResourceVersion).where(ResourceVersion.res_type.in_(readable))
    return _page(session, caller, statement, request)


def _entry(
    version: ResourceVersion, shown: dict[str, Any] | None, fhir_base: str
) -> dict[str, Any]:
    reference = f"{version.res_type}/{version.res_id}"
    method = version.method
    status = _STATUS.get(method) or ("201 Created" if version.version == 1 else "200 OK")
    entry: dict[str, Any] = {"fullUrl": f"{fhir_base}/{reference}"}
    if not version.deleted and shown is not None:
        entry["resource"] = shown
    entry["request"] = {
        "method": method,
        "url": version.res_type if method == "POST" else reference,
    }
    entry["response"] = {
        "status": status,
        "etag": weak_etag(version.version),
        "lastModified": instant(version.last_updated),
    }
    return entry


def history_bundle(
    page: HistoryPage, request: HistoryRequest, *, fhir_base: str, path: str
) -> dict[str, Any]:
    links = Page(
        base=f"{fhir_base}{path}",
        params=request.used,
        offset=request.offset,
        count=request.count,
        total=page.total,
        returned=len(page.versions),
    ).links()
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(utcnow())},
        "type": "history",
        "total": page.total,
        "link": links,
    }
    if page.versions:
        bundle["entry"] = [
            _entry(v, page.shown.get((v.resource_pk, v.version)), fhir_base) for v in page.versions
        ]
    return bundle
