"""FHIR REST routes of the store, generic over the resource types it serves."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from exchange import service
from exchange.resources import STORE_TYPES
from puente.errors import NotFound
from puente.fhir.bundle import Cursors
from puente.fhir.prefer import lenient
from puente.fhir.registry import REGISTRY
from puente.fhir.responses import FHIRResponse, resource_response
from puente.fhir.searching import form_items, query_items, search_response
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute
from translation.i18n import N_

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["FHIR resources"])

for _capability in STORE_TYPES.values():
    REGISTRY.register(_capability)


def _search(
    request: Request,
    items: list[tuple[str, str]],
    resource_type: str,
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> FHIRResponse:
    note = ctx.note("search-type", "E", entities=[resource_type])
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
