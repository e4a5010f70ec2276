"""FHIR REST routes of the store, generic over the resource types it serves.

Order matters: the history routes come before the generic `/{type}` and `/{type}/{id}`
routes that would otherwise take `_history` for a type or an id.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from exchange import history, service, store, transaction, writes
from exchange.resources import STORE_TYPES
from puente.context import AuditNote, RequestContext
from puente.errors import InvalidRequest, Issue, NotFound, UnsupportedMediaType
from puente.fhir.bundle import Cursors
from puente.fhir.dates import instant
from puente.fhir.media import BODY_TYPES, JSON_PATCH, check_content_type
from puente.fhir.outcome import operation_outcome
from puente.fhir.prefer import lenient, preferences
from puente.fhir.registry import REGISTRY
from puente.fhir.responses import (
    FHIRResponse,
    http_date,
    resource_response,
    version_from_etag,
    weak_etag,
)
from puente.fhir.search import conditional_criteria
from puente.fhir.searching import form_items, query_items, search_response
from puente.settings import get_settings
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute
from translation.i18n import N_

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["FHIR resources"])

# Declared here, where the writes are served: conditional create, update (PUT
# [type]?criteria) and single delete, versions as `If-Match` needs them.
for _capability in STORE_TYPES.values():
    REGISTRY.register(
        dataclasses.replace(
            _capability,
            versioning="versioned-update",
            conditional_create=True,
            conditional_update=True,
            conditional_delete="single",
        )
    )
for _interaction in ("transaction", "batch", "history-system"):
    if _interaction not in REGISTRY.system_interactions:
        REGISTRY.system_interactions.append(_interaction)


def _history_response(
    request: Request, page: history.HistoryPage, parsed: history.HistoryRequest, path: str
) -> FHIRResponse:
    bundle = history.history_bundle(page, parsed, fhir_base=get_settings().fhir_base_url, path=path)
    return FHIRResponse(bundle)


@router.get("/_history", summary="History of everything the caller may read")
def history_system(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    note = ctx.note("history-system", "R", entities=["_history"])
    parsed = history.parse_history(query_items(request), lenient=lenient(request))
    page = history.system_history(session, caller, request=parsed)
    note.entities = _entities(page) or ["_history"]
    return _history_response(request, page, parsed, "/_history")


@router.get("/{resource_type}/_history", summary="History of a resource type")
def history_type(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    note = ctx.note("history-type", "R", entities=[resource_type[:64]])
    parsed = history.parse_history(query_items(request), lenient=lenient(request))
    page = history.type_history(session, caller, resource_type=resource_type, request=parsed)
    note.entities = _entities(page) or [resource_type]
    return _history_response(request, page, parsed, f"/{resource_type}/_history")


@router.get("/{resource_type}/{res_id}/_history", summary="History of a resource")
def history_instance(
    resource_type: str,
    res_id: str,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> FHIRResponse:
    ctx.note("history-instance", "R", entities=[f"{resource_type[:64]}/{res_id[:64]}"])
    parsed = history.parse_history(query_items(request), lenient=lenient(request))
    page = history.instance_history(
        session, caller, resource_type=resource_type, res_id=res_id, request=parsed
    )
    return _history_response(request, page, parsed, f"/{resource_type}/{res_id}/_history")


def _entities(page: history.HistoryPage) -> list[str]:
    return list(dict.fromkeys(f"{v.res_type}/{v.res_id}" for v in page.versions))


def _search(
    request: Request,
    items: list[tuple[str, str]],
    resource_type: str,
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> FHIRResponse:
    note = ctx.note("search-type", "E", entities=[resource_type], query=True)
    parsed = service.parse(resource_type, items, lenient=lenient(request))
    result = service.search(session, caller, resource_type=resource_type, request=parsed)
    note.entities = [f"{r['resourceType']}/{r['id']}" for r in result.resources] or [resource_type]
    return search_response(
        resource_type=resource_type,
        resources=result.resources,
        total=result.total,
        parsed=parsed,
        locale=ctx.locale,
        included=result.included,
        cursors=Cursors(parsed.page_token, result.next_token, result.previous_token),
        issues=service.withheld_issues(result.withheld),
    )


@router.get("/{resource_type}", summary="Search a resource type")
def search_type(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    return _search(request, query_items(request), resource_type, session, caller, ctx)


@router.post("/{resource_type}/_search", summary="Search a resource type (form-encoded)")
async def search_post(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    items = await form_items(request)
    return await run_in_threadpool(_search, request, items, resource_type, session, caller, ctx)


@router.get("/{resource_type}/{res_id}", summary="Read a resource")
def read(
    resource_type: str, res_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"{resource_type}/{res_id[:64]}"])
    found = service.read(session, caller, resource_type=resource_type, res_id=res_id)
    return resource_response(found.resource, version=found.version, last_updated=found.last_updated)


@router.get("/{resource_type}/{res_id}/_history/{version}", summary="Read a version")
def vread(
    resource_type: str,
    res_id: str,
    version: str,
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> FHIRResponse:
    ctx.note("vread", "R", entities=[f"{resource_type}/{res_id[:64]}/_history/{version[:16]}"])
    if not version.isdigit():
        raise NotFound(N_("error.version_not_found"), version=version[:16])
    found = service.vread(
        session, caller, resource_type=resource_type, res_id=res_id, version=int(version)
    )
    return resource_response(found.resource, version=found.version, last_updated=found.last_updated)


# --- writes -----------------------------------------------------------------------------


class _TypeConvertor(Convertor[str]):
    """A resource type's name, so that write routes never match `/fhir/metadata` or
    `/fhir/_history` (those answer 405 for methods they do not take)."""

    regex = "[A-Z][A-Za-z]{1,63}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fhirtype", _TypeConvertor())


def _if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    return None if header is None else version_from_etag(header)


def _if_none_exist(request: Request) -> list[tuple[str, str]] | None:
    header = request.headers.get("if-none-exist")
    return None if header is None else conditional_criteria(header)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


async def json_body(request: Request, media: frozenset[str] = BODY_TYPES) -> Any:
    check_content_type(request, media)
    raw = await request.body()
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(N_("error.body_not_json")) from exc


_OUTCOME_KEYS = {
    "create": N_("info.resource_created"),
    "update": N_("info.resource_updated"),
    "unchanged": N_("info.resource_unchanged"),
}


def _write_response(
    request: Request, ctx: RequestContext, written: writes.Written, *, status_code: int
) -> Response:
    """The written resource, or what `Prefer: return=` asks for (R4 3.1.0.8.1)."""
    reference = f"{written.resource_type}/{written.res_id}"
    location = f"{get_settings().fhir_base_url}/{reference}/_history/{written.version}"
    headers = {
        "ETag": weak_etag(written.version),
        "Last-Modified": http_date(written.last_updated),
        "Location": location,
    }
    wanted = preferences(request).get("return", "representation")
    if wanted == "minimal":
        return Response(status_code=status_code, headers=headers)
    if wanted == "operationoutcome":
        key = _OUTCOME_KEYS["create" if written.created else "update"]
        if not written.changed and not written.created:
            key = _OUTCOME_KEYS["unchanged"]
        issue = Issue(
            key,
            {"reference": reference, "version": written.version},
            code="informational",
            severity="information",
        )
        body = operation_outcome([issue], ctx.locale)
        return FHIRResponse(body, status_code=status_code, headers=headers)
    return FHIRResponse(written.resource, status_code=status_code, headers=headers)


def _noted(note: AuditNote, written: writes.Written) -> None:
    note.entities = [f"{written.resource_type}/{written.res_id}"]
    note.patients = list(written.patients)


@router.post("/{resource_type:fhirtype}", summary="Create a resource (If-None-Exist: conditional)")
async def create(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    note = ctx.note("create", "C", entities=[resource_type[:64]])
    service.capability(resource_type)
    body = await json_body(request)
    written = await run_in_threadpool(
        writes.create,
        session,
        caller,
        resource_type=resource_type,
        body=body,
        if_none_exist=_if_none_exist(request),
    )
    _noted(note, written)
    return _write_response(request, ctx, written, status_code=201 if written.created else 200)


@router.put("/{resource_type:fhirtype}/{res_id}", summary="Update, or create at its id")
async def update(
    resource_type: str,
    res_id: str,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> Response:
    note = ctx.note("update", "U", entities=[f"{resource_type[:64]}/{res_id[:64]}"])
    service.capability(resource_type)
    body = await json_body(request)
    written = await run_in_threadpool(
        writes.update,
        session,
        caller,
        resource_type=resource_type,
        res_id=res_id,
        body=body,
        if_match=_if_match(request),
    )
    _noted(note, written)
    return _write_response(request, ctx, written, status_code=201 if written.created else 200)


@router.put("/{resource_type:fhirtype}", summary="Conditional update: PUT [type]?criteria")
async def conditional_update(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    note = ctx.note("update", "U", entities=[resource_type[:64]])
    service.capability(resource_type)
    body = await json_body(request)
    written = await run_in_threadpool(
        writes.conditional_update,
        session,
        caller,
        resource_type=resource_type,
        criteria=query_items(request),
        body=body,
        if_match=_if_match(request),
    )
    _noted(note, written)
    return _write_response(request, ctx, written, status_code=201 if written.created else 200)


@router.patch("/{resource_type:fhirtype}/{res_id}", summary="Patch a resource (JSON Patch)")
async def patch(
    resource_type: str,
    res_id: str,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> Response:
    note = ctx.note("patch", "U", entities=[f"{resource_type[:64]}/{res_id[:64]}"])
    service.capability(resource_type)
    if _media(request) != JSON_PATCH:
        raise UnsupportedMediaType(N_("error.patch_media_type"))
    document = await json_body(request, frozenset({JSON_PATCH}))
    written = await run_in_threadpool(
        writes.patch,
        session,
        caller,
        resource_type=resource_type,
        res_id=res_id,
        document=document,
        if_match=_if_match(request),
    )
    _noted(note, written)
    return _write_response(request, ctx, written, status_code=200)


def _media(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _deleted_response(written: writes.Written) -> Response:
    headers = {"ETag": weak_etag(written.version)} if written.changed else {}
    return Response(status_code=204, headers=headers)


@router.delete("/{resource_type:fhirtype}/{res_id}", summary="Delete a resource")
def delete(
    resource_type: str,
    res_id: str,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> Response:
    note = ctx.note("delete", "D", entities=[f"{resource_type[:64]}/{res_id[:64]}"])
    written = writes.delete(
        session,
        caller,
        resource_type=resource_type,
        res_id=res_id,
        if_match=_if_match(request),
    )
    note.patients = list(written.patients)
    return _deleted_response(written)


@router.delete("/{resource_type:fhirtype}", summary="Conditional delete: DELETE [type]?criteria")
def conditional_delete(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    note = ctx.note("delete", "D", entities=[resource_type[:64]])
    written = writes.conditional_delete(
        session, caller, resource_type=resource_type, criteria=query_items(request)
    )
    _noted(note, written)
    return _deleted_response(written)


_ENTRY_SUBTYPES = {
    "POST": ("create", "C"),
    "PUT": ("update", "U"),
    "PATCH": ("patch", "U"),
    "DELETE": ("delete", "D"),
}


def _response_entry(outcome: transaction.Outcome, minimal: bool, locale: str) -> dict[str, Any]:
    response: dict[str, Any] = {"status": outcome.status}
    if outcome.location:
        response["location"] = outcome.location
    if outcome.version is not None:
        response["etag"] = weak_etag(outcome.version)
    if outcome.last_modified is not None:
        response["lastModified"] = instant(outcome.last_modified)
    if outcome.issues:
        response["outcome"] = operation_outcome(outcome.issues, locale)
    entry: dict[str, Any] = {"response": response}
    if outcome.resource is not None and not minimal:
        entry["resource"] = outcome.resource
        if outcome.resource.get("id"):
            entry["fullUrl"] = (
                f"{get_settings().fhir_base_url}/{outcome.resource['resourceType']}/"
                f"{outcome.resource['id']}"
            )
    return entry


def _bundle(
    body: Any, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    settings = get_settings()
    kind, entries = transaction.parse(body, settings.fhir_base_url)
    ctx.note(kind, "E", entities=["Bundle"])
    if kind == "transaction":
        outcomes = transaction.run_transaction(session, caller, entries)
    else:
        outcomes = transaction.run_batch(session, caller, entries)
    for entry, outcome in zip(entries, outcomes, strict=True):
        if outcome.written is not None and outcome.written.changed:
            subtype, action = _ENTRY_SUBTYPES.get(entry.method, ("read", "R"))
            _noted(ctx.note(subtype, action), outcome.written)
    minimal = preferences(request).get("return") == "minimal"
    response = {
        "resourceType": "Bundle",
        "id": store.new_id(),
        "type": f"{kind}-response",
        "link": [{"relation": "self", "url": settings.fhir_base_url}],
        "entry": [_response_entry(o, minimal, ctx.locale) for o in outcomes],
    }
    return FHIRResponse(response)


@router.post("", summary="Batch or transaction Bundle (R4 3.1.0.11)")
async def bundle(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    body = await json_body(request)
    return await run_in_threadpool(_bundle, body, request, session, caller, ctx)
