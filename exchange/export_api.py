"""`$export`: FHIR Bulk Data Access 2.0 through the disclosure gate.

- Kick-off: `GET|POST /fhir/$export` (system level), `/fhir/Patient/$export` (every Patient
  compartment the caller may see), `/fhir/Group/{id}/$export` (the compartments of the
  Group's Patient members and of the records the MPI links to theirs). `Prefer:
  respond-async` is required. Parameters (query string, or a Parameters body on POST):
  `_outputFormat` (application/fhir+ndjson, application/ndjson, ndjson), `_type` (comma
  list of stored types), `_since` (an instant). Others (`_elements`, `_typeFilter`,
  `patient`, ...) are a 400 unless `Prefer: handling=lenient`. 202 with
  `Content-Location: {base}/fhir/$export-status/{job}`.
- `GET /fhir/$export-status/{job}` (the caller who kicked it off only; anyone else 404):
  202 with `X-Progress` and `Retry-After` while it runs; 200 with the manifest once done
  (`transactionTime`, `request`, `requiresAccessToken: true`, `output: [{type, url,
  count}]`, `error: []`); 500 with an OperationOutcome if the export failed; 410 once its
  files expired (`PUENTE_EXPORT_RETENTION_SECONDS` after it completed).
- `DELETE /fhir/$export-status/{job}`: 202; the export stops, its files are deleted, its
  status answers 404.
- `GET /fhir/$export-file/{job}/{Type}-{n}.ndjson`: `application/fhir+ndjson`, with the
  same caller's token; each download is audited (event `export`, the file and the
  resources in it).

Included before the store's router, whose `/fhir/{type}/{id}` routes would take
`Patient/$export`, `$export-status/...` and `OperationDefinition/export`.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

import exchange.api  # noqa: F401 - registers Patient and Group before $export is added
from exchange import export_jobs
from exchange.api import json_body
from exchange.jobs import COMPLETED, FAILED
from exchange.models import ExportJob
from puente.audit import service as audit
from puente.db import session_factory
from puente.errors import InvalidRequest, Issue
from puente.fhir.dates import instant
from puente.fhir.media import FHIR_NDJSON, check_accept
from puente.fhir.outcome import operation_outcome
from puente.fhir.prefer import lenient, preferences
from puente.fhir.registry import OperationDef, declare_operation, operation_param, operation_url
from puente.fhir.registry import operation_definition as definition_of
from puente.fhir.responses import FHIRResponse
from puente.fhir.searching import query_items
from puente.settings import get_settings
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute
from translation.i18n import N_

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["FHIR bulk export"])

RETRY_AFTER_SECONDS = 2
OPERATION_ID = "export"
OPERATION_PATH = f"/OperationDefinition/{OPERATION_ID}"


# `$export` at system level and on Patient and Group in the CapabilityStatement.
declare_operation(
    OperationDef(
        name="export",
        definition=operation_url(OPERATION_ID),
        documentation="FHIR Bulk Data export (NDJSON), filtered by the disclosure gate.",
    ),
    "Patient",
    "Group",
    system=True,
)


def _param(name: str, use: str, high: str, kind: str, text: str) -> dict[str, Any]:
    return operation_param(name, use, 0, high, kind, text)


def operation_definition() -> dict[str, Any]:
    """The OperationDefinition the CapabilityStatement points to (valid R4)."""
    return definition_of(
        OPERATION_ID,
        name="Export",
        title="FHIR Bulk Data export through the disclosure gate",
        description=(
            "FHIR Bulk Data Access 2.0 export, asynchronous (Prefer: respond-async): 202 "
            "with Content-Location naming the status URL ([base]/$export-status/[job]), "
            "which answers 202 with X-Progress while the export runs and the Bulk Data "
            "manifest when it is done; DELETE on it cancels. Every file holds exactly what "
            "the disclosure gate lets the caller see, and every download is audited. "
            "System level: hospital systems; Patient level: systems, clinicians and "
            "patients (their own records); Group level: systems and clinicians. Files "
            "are kept for a day (a setting), then the status answers 410."
        ),
        affects_state=False,
        code="export",
        resources=("Patient", "Group"),
        system=True,
        on_type=True,
        instance=True,
        parameters=[
            _param(
                "_outputFormat",
                "in",
                "1",
                "string",
                "application/fhir+ndjson (also application/ndjson, ndjson): the only format.",
            ),
            _param(
                "_since",
                "in",
                "1",
                "instant",
                "Only resources changed after this instant.",
            ),
            _param(
                "_type",
                "in",
                "*",
                "string",
                "Comma-separated resource types (default: every type the level and the "
                "caller's scopes allow).",
            ),
            {
                "name": "return",
                "use": "out",
                "min": 0,
                "max": "1",
                "type": "OperationOutcome",
                "documentation": (
                    "202 Accepted with an informational OperationOutcome and "
                    "Content-Location: [base]/$export-status/[job]."
                ),
            },
        ],
    )


def _status_url(job_id: str) -> str:
    return f"{get_settings().fhir_base_url}/$export-status/{job_id}"


def _request_url(path: str, used: list[tuple[str, str]]) -> str:
    query = f"?{urlencode(used)}" if used else ""
    return f"{get_settings().fhir_base_url}{path}{query}"


def _kick_off(
    request: Request,
    items: list[tuple[str, str]],
    session: SessionDep,
    caller: CallerDep,
    ctx: ContextDep,
    *,
    level: str,
    path: str,
    group_id: str | None = None,
) -> Response:
    ctx.note("operation", "E", entities=[path.lstrip("/")])
    export_jobs.authorize(caller, level)
    check_accept(request)
    if "respond-async" not in preferences(request):
        raise InvalidRequest(N_("error.export_respond_async"))
    parsed = export_jobs.parse_request(items, lenient=lenient(request))
    job = export_jobs.kick_off(
        session,
        caller,
        level=level,
        request=parsed,
        request_url=_request_url(path, parsed.used),
        locale=ctx.locale,
        group_id=group_id,
    )
    issue = Issue(N_("info.export_accepted"), code="informational", severity="information")
    return FHIRResponse(
        operation_outcome([issue], ctx.locale),
        status_code=202,
        headers={"Content-Location": _status_url(job.id)},
    )


async def _items(request: Request) -> list[tuple[str, str]]:
    """The kick-off's parameters: the query's, and a POST's Parameters body's."""
    items = query_items(request)
    if request.method == "POST":
        items += export_jobs.parameters_items(await json_body(request))
    return items


@router.get("/$export", summary="Bulk export: everything the caller may see", status_code=202)
@router.post(
    "/$export",
    summary="Bulk export: everything the caller may see (Parameters body)",
    status_code=202,
)
async def export_system(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    items = await _items(request)
    return await run_in_threadpool(
        _kick_off, request, items, session, caller, ctx, level=export_jobs.SYSTEM, path="/$export"
    )


@router.get("/Patient/$export", summary="Bulk export of Patient compartments", status_code=202)
@router.post(
    "/Patient/$export",
    summary="Bulk export of Patient compartments (Parameters body)",
    status_code=202,
)
async def export_patients(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    items = await _items(request)
    path = "/Patient/$export"
    return await run_in_threadpool(
        _kick_off, request, items, session, caller, ctx, level=export_jobs.PATIENT, path=path
    )


@router.get(
    "/Group/{group_id}/$export", summary="Bulk export of a Group's members", status_code=202
)
@router.post(
    "/Group/{group_id}/$export",
    summary="Bulk export of a Group's members (Parameters body)",
    status_code=202,
)
async def export_group(
    group_id: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    items = await _items(request)
    group_id = group_id[:64]
    return await run_in_threadpool(
        _kick_off,
        request,
        items,
        session,
        caller,
        ctx,
        level=export_jobs.GROUP,
        path=f"/Group/{group_id}/$export",
        group_id=group_id,
    )


def _progress(job: ExportJob) -> str:
    types = [t for t in job.types.split(",") if t]
    done = min(job.type_index, len(types))
    return f"{job.resources_done} resources written; {done} of {len(types)} types done"


def _manifest(session: Session, job: ExportJob) -> dict[str, Any]:
    base = get_settings().fhir_base_url
    return {
        "transactionTime": instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": f.res_type,
                "url": f"{base}/$export-file/{job.id}/{f.name}",
                "count": f.count,
            }
            for f in export_jobs.output_files(session, job)
        ],
        "error": [],
    }


@router.get("/$export-status/{job_id}", summary="Status of a bulk export")
def status(job_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep) -> Response:
    ctx.note("operation", "R", entities=[f"$export/{job_id[:36]}"])
    job = export_jobs.find(session, caller, job_id=job_id)
    if job.status == FAILED:
        issue = Issue(job.error or N_("error.export_failed"), code="exception")
        return FHIRResponse(operation_outcome([issue], ctx.locale), status_code=500)
    if job.status != COMPLETED:
        return Response(
            status_code=202,
            headers={"X-Progress": _progress(job), "Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse(_manifest(session, job), headers={"Expires": _http_date(job)})


def _http_date(job: ExportJob) -> str:
    assert job.expires_at is not None
    return format_datetime(job.expires_at, usegmt=True)


@router.delete("/$export-status/{job_id}", summary="Cancel a bulk export")
def cancel(job_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep) -> Response:
    ctx.note("operation", "D", entities=[f"$export/{job_id[:36]}"])
    export_jobs.cancel(session, caller, job_id=job_id)
    return Response(status_code=202)


def _stream(chunk_ids: list[int]) -> Iterator[bytes]:
    """A file's parts, each read when sent, in a session of its own: the request's
    session has committed and closed by the time the body streams."""
    with session_factory()() as session:
        for chunk_id in chunk_ids:
            content = export_jobs.chunk_content(session, chunk_id)
            if content is None:  # cancelled or purged meanwhile
                return
            yield content.encode("utf-8")


@router.get("/$export-file/{job_id}/{name}", summary="One NDJSON file of a bulk export")
def download(
    job_id: str, name: str, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    parts = export_jobs.file_parts(session, caller, job_id=job_id, name=name)
    # Always audited (whatever `audit_reads` says): what left, to whom, about whom.
    audit.append(
        session,
        event_type="export",
        subtype="download",
        action="R",
        caller=caller,
        request_id=ctx.request_id,
        source_ip=ctx.source_ip,
        entities=[f"$export/{job_id[:36]}/{name[:80]}", *parts.entities],
        patients=parts.patients,
    )
    return StreamingResponse(
        _stream(parts.chunk_ids),
        media_type=FHIR_NDJSON,
        headers={"X-Resource-Count": str(parts.count)},
    )


@router.get(OPERATION_PATH, summary="The $export OperationDefinition")
def definition(ctx: ContextDep) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"OperationDefinition/{OPERATION_ID}"])
    return FHIRResponse(operation_definition())
