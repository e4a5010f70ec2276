"""`GET|POST /fhir/Patient/{id}/$everything` and its OperationDefinition.

Included before the store's router, whose generic `/fhir/{type}/{id}` routes would take
`OperationDefinition/Patient-everything` otherwise.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

import exchange.api  # noqa: F401 - registers Patient before its operation is added here
from exchange import everything
from exchange.api import json_body
from puente.context import AuditNote
from puente.fhir.bundle import Cursors, Page, searchset
from puente.fhir.outcome import operation_outcome
from puente.fhir.registry import OperationDef, declare_operation, operation_param, operation_url
from puente.fhir.registry import operation_definition as definition_of
from puente.fhir.responses import FHIRResponse
from puente.fhir.searching import query_items
from puente.settings import get_settings
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["Patient $everything"])

OPERATION_ID = "Patient-everything"


# `$everything` on Patient in the CapabilityStatement.
declare_operation(
    OperationDef(
        name="everything",
        definition=operation_url(OPERATION_ID),
        documentation="A patient's records across the linked records of both sides.",
    ),
    "Patient",
)


def operation_definition() -> dict[str, Any]:
    """The OperationDefinition the CapabilityStatement points to (valid R4), after
    http://hl7.org/fhir/OperationDefinition/Patient-everything."""
    return definition_of(
        OPERATION_ID,
        name="PatientEverything",
        title="Fetch a patient's records across the records linked to it",
        description=(
            "The Patient, every Patient record the master patient index links to it, the "
            "resources of each one's patient compartment, what those reference (one "
            "level: Practitioner, Location, Organization, Encounter...) and the Provenance "
            "of them all, only as far as the disclosure gate lets the caller see: records "
            "of another hospital need the patient's Consent or a break-the-glass grant. "
            "Each resource names its source hospital in meta.source. When records a "
            "break-the-glass would open were left out, an OperationOutcome entry (search "
            "mode outcome, issue suppressed, BTG) says so, never which. Clinicians, "
            "hospital systems (their own records) and patients (their own) may call it; "
            "other roles get 403, and a Patient the caller cannot see is a 404."
        ),
        affects_state=False,
        code="everything",
        resources=("Patient",),
        system=False,
        on_type=False,
        instance=True,
        parameters=[
            operation_param(
                "start",
                "in",
                0,
                "1",
                "date",
                "Care dates from this date: resources whose care dates all end before it are "
                "left out; resources without a care date stay.",
            ),
            operation_param(
                "end",
                "in",
                0,
                "1",
                "date",
                "Care dates up to this date: resources whose care dates all start after it "
                "are left out; resources without a care date stay.",
            ),
            operation_param(
                "_since",
                "in",
                0,
                "1",
                "instant",
                "Only resources whose meta.lastUpdated is at or after this instant.",
            ),
            operation_param(
                "_type",
                "in",
                0,
                "*",
                "code",
                "Only resources of these types (comma-separated); a type the server does "
                "not hold is a 400.",
            ),
            operation_param(
                "_count",
                "in",
                0,
                "1",
                "integer",
                f"Resources per page ({everything.DEFAULT_COUNT}; at most "
                f"{everything.MAX_COUNT}); the next link pages on with a token, stable while "
                "data changes.",
            ),
            operation_param(
                "return",
                "out",
                1,
                "1",
                "Bundle",
                "A searchset Bundle with total, self/next/previous links and the resources.",
            ),
        ],
    )


def _bundle(
    patient_id: str,
    parsed: everything.EverythingRequest,
    found: everything.Everything,
    locale: str,
) -> dict[str, Any]:
    settings = get_settings()
    page = Page(
        base=f"{settings.fhir_base_url}/Patient/{quote(patient_id, safe='')}/$everything",
        params=parsed.used,
        offset=0,
        count=parsed.count,
        total=found.total,
        returned=len(found.resources),
        cursors=Cursors(parsed.page_token, found.next_token, found.previous_token),
    )
    issues = everything.issues(found.withheld)
    return searchset(
        found.resources,
        fhir_base=settings.fhir_base_url,
        page=page,
        outcome=operation_outcome(issues, locale) if issues else None,
    )


def _note(ctx: ContextDep, res_id: str) -> AuditNote:
    reference = f"Patient/{res_id[:64]}"
    return ctx.note("everything", "E", entities=[reference], patients=[reference], query=True)


def _everything(
    res_id: str,
    items: list[tuple[str, str]],
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
    note: AuditNote,
) -> FHIRResponse:
    parsed = everything.parse(items)
    found = everything.everything(session, caller, patient_id=res_id, request=parsed)
    note.entities = [f"{r['resourceType']}/{r['id']}" for r in found.resources] or note.entities
    note.patients = found.patients
    return FHIRResponse(_bundle(res_id, parsed, found, ctx.locale))


@router.get("/Patient/{res_id}/$everything", summary="A patient's records across linked records")
def everything_get(
    res_id: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    note = _note(ctx, res_id)
    everything.authorize(caller)
    return _everything(res_id, query_items(request), session, caller, ctx, note)


@router.post("/Patient/{res_id}/$everything", summary="$everything (Parameters body)")
async def everything_post(
    res_id: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    note = _note(ctx, res_id)
    everything.authorize(caller)
    items = query_items(request) + everything.parameter_items(await json_body(request))
    return await run_in_threadpool(_everything, res_id, items, session, caller, ctx, note)


@router.get(f"/OperationDefinition/{OPERATION_ID}", summary="The $everything OperationDefinition")
def definition(ctx: ContextDep) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"OperationDefinition/{OPERATION_ID}"])
    return FHIRResponse(operation_definition())
