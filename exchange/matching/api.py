"""FHIR operations of the master patient index: `POST /fhir/Patient/$match` and IHE PIXm
`GET|POST /fhir/Patient/$ihe-pix`, with their OperationDefinitions.

Included before the store's router, whose generic `/fhir/{type}/{id}` routes would take
`Patient/$match` and `OperationDefinition/...` otherwise.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

import exchange.api  # noqa: F401 - registers Patient before its operations are added here
from exchange.api import json_body
from exchange.matching import operations
from exchange.matching.definitions import IHE_PIX, MATCH, operation_definition
from exchange.matching.errors import BadParameter
from exchange.matching.operations import MATCH_GRADE
from puente.fhir.registry import declare_operation
from puente.fhir.responses import FHIRResponse
from puente.fhir.searching import form_items, query_items
from puente.settings import get_settings
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["Patient matching"])


# `$match` and `$ihe-pix` on Patient in the CapabilityStatement.
declare_operation(MATCH.declared(), "Patient")
declare_operation(IHE_PIX.declared(), "Patient")


def _match_bundle(candidates: list[operations.Candidate]) -> dict[str, Any]:
    base = get_settings().fhir_base_url
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(candidates),
        "link": [{"relation": "self", "url": f"{base}/Patient/$match"}],
        "entry": [
            {
                "fullUrl": f"{base}/Patient/{c.resource['id']}",
                "resource": c.resource,
                "search": {
                    "extension": [{"url": MATCH_GRADE, "valueCode": c.score.grade}],
                    "mode": "match",
                    "score": round(c.score.probability, 6),
                },
            }
            for c in candidates
        ],
    }


@router.post("/Patient/$match", summary="Patients that may be the person described (R4 $match)")
async def match(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    note = ctx.note("operation", "E", entities=["Patient/$match"], query=True)
    operations.authorize(caller)
    body = await json_body(request)
    parsed = operations.parse_match(body)
    found = await run_in_threadpool(operations.match, session, caller, request=parsed)
    references = [f"Patient/{c.resource['id']}" for c in found]
    note.entities = references or ["Patient/$match"]
    note.patients = references
    return FHIRResponse(_match_bundle(found))


def _pix_parameters(found: list[operations.CrossReference]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for reference in found:
        parameters += [
            {"name": "targetIdentifier", "valueIdentifier": i} for i in reference.identifiers
        ]
        parameters.append(
            {"name": "targetId", "valueReference": {"reference": f"Patient/{reference.res_id}"}}
        )
    body: dict[str, Any] = {"resourceType": "Parameters"}
    if parameters:
        body["parameter"] = parameters
    return body


def _pix(
    items: list[tuple[str, str]], session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    note = ctx.note("operation", "E", entities=["Patient/$ihe-pix"], query=True)
    sources = [v for k, v in items if k == "sourceIdentifier"]
    targets = [
        system.strip()
        for k, v in items
        if k == "targetSystem"
        for system in v.split(",")
        if system.strip()
    ]
    unknown = sorted({k for k, _ in items} - {"sourceIdentifier", "targetSystem", "_format"})
    if unknown:
        raise BadParameter(name=unknown[0][:64])
    if len(sources) != 1:
        raise BadParameter(name="sourceIdentifier")
    found = operations.pix(session, caller, source_identifier=sources[0], target_systems=targets)
    references = [f"Patient/{r.res_id}" for r in found]
    note.entities = references or ["Patient/$ihe-pix"]
    note.patients = references
    return FHIRResponse(_pix_parameters(found))


@router.get("/Patient/$ihe-pix", summary="IHE PIXm: the linked identifiers of a patient")
def pix_get(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    return _pix(query_items(request), session, caller, ctx)


@router.post("/Patient/$ihe-pix", summary="IHE PIXm (form-encoded)")
async def pix_post(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    items = await form_items(request)
    return await run_in_threadpool(_pix, items, session, caller, ctx)


@router.get(f"/OperationDefinition/{MATCH.id}", summary="The $match OperationDefinition")
def match_definition(ctx: ContextDep) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"OperationDefinition/{MATCH.id}"])
    return FHIRResponse(operation_definition(MATCH))


@router.get(f"/OperationDefinition/{IHE_PIX.id}", summary="The $ihe-pix OperationDefinition")
def pix_definition(ctx: ContextDep) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"OperationDefinition/{IHE_PIX.id}"])
    return FHIRResponse(operation_definition(IHE_PIX))
