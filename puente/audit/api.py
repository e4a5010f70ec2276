"""AuditEvent (read-only) for consent officers and admins, shaped after IHE BALP.

These routes are included before the store's generic `/fhir/{resource_type}` routes
(puente/app.py), so they answer for AuditEvent. Reading the trail is itself audited
(45 CFR 164.312(b): who looked at the audit log is an auditable event).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from puente.audit import service
from puente.audit.render import audit_event
from puente.audit.search import SEARCH_PARAMS
from puente.fhir.bundle import Cursors
from puente.fhir.prefer import lenient
from puente.fhir.registry import REGISTRY, ResourceCapability
from puente.fhir.responses import FHIRResponse, resource_response
from puente.fhir.searching import form_items, query_items, search_response
from puente.settings import get_settings
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["Audit"])

REGISTRY.register(
    ResourceCapability(
        type="AuditEvent",
        interactions=("read", "search-type"),
        search_params=SEARCH_PARAMS,
        versioning="no-version",
        documentation=(
            "The tamper-evident audit trail, read-only, shaped after IHE BALP. Consent "
            "officers see their hospital's events, admins all. The request id is the entity "
            "typed BasicAuditEntityType|XrequestId. Default order: ascending id; pages are "
            "keyset-based, so their links stay put while events are added."
        ),
    )
)


def _search(
    request: Request,
    items: list[tuple[str, str]],
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
) -> FHIRResponse:
    note = ctx.note("search-type", "E", entities=["AuditEvent"], query=True)
    parsed = service.parse(items, lenient=lenient(request))
    result = service.search_events(session, caller, request=parsed)
    note.entities = [f"AuditEvent/{e.id}" for e in result.entries] or ["AuditEvent"]
    fhir_base = get_settings().fhir_base_url
    return search_response(
        resource_type="AuditEvent",
        resources=[audit_event(e, fhir_base=fhir_base) for e in result.entries],
        total=result.total,
        parsed=parsed,
        locale=ctx.locale,
        cursors=Cursors(parsed.page_token, result.next_token, result.previous_token),
    )


@router.get("/AuditEvent", summary="Search the audit trail")
def search_events(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    return _search(request, query_items(request), session, caller, ctx)


@router.post("/AuditEvent/_search", summary="Search the audit trail (form-encoded)")
async def search_events_post(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    items = await form_items(request)
    return await run_in_threadpool(_search, request, items, session, caller, ctx)


@router.get("/AuditEvent/{event_id}", summary="Read one audit event")
def read_event(
    event_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"AuditEvent/{event_id[:64]}"])
    entry = service.read_event(session, caller, event_id=event_id)
    resource = audit_event(entry, fhir_base=get_settings().fhir_base_url)
    return resource_response(resource, last_updated=entry.recorded_at)
