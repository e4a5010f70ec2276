"""FHIR REST routes of the store, generic over the resource types it serves."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from exchange import service
from exchange.resources import STORE_TYPES
from puente.errors import Issue, NotFound
from puente.fhir.bundle import Page, searchset
from puente.fhir.media import FORM, check_content_type
from puente.fhir.outcome import operation_outcome
from puente.fhir.prefer import lenient
from puente.fhir.registry import REGISTRY
from puente.fhir.responses import FHIRResponse, resource_response
from puente.settings import get_settings
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
    settings = get_settings()
    outcome = None
    if parsed.ignored:
        outcome = operation_outcome(
            [
                Issue(
                    N_("warning.search_param_ignored"),
                    {"name": name[:64]},
                    code="not-supported",
                    severity="warning",
                )
                for name in parsed.ignored
            ],
            ctx.locale,
        )
    page = Page(
        base=f"{settings.fhir_base_url}/{resource_type}",
        params=parsed.used,
        offset=parsed.offset,
        count=parsed.count,
        total=result.total,
        returned=len(result.resources),
    )
    bundle = searchset(
        result.resources, fhir_base=settings.fhir_base_url, page=page, outcome=outcome
    )
    return FHIRResponse(bundle)


@router.get("/{resource_type}", summary="Search a resource type")
def search_type(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    items = parse_qsl(request.url.query, keep_blank_values=True)
    return _search(request, items, resource_type, session, caller, ctx)


@router.post("/{resource_type}/_search", summary="Search a resource type (form-encoded)")
async def search_post(
    resource_type: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    check_content_type(request, frozenset({FORM}))
    body = (await request.body()).decode("utf-8", errors="replace")
    items = parse_qsl(request.url.query, keep_blank_values=True) + parse_qsl(
        body, keep_blank_values=True
    )
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
