"""`$import`: asynchronous bulk import by a hospital system, after the Bulk Data
kick-off / status conventions (HL7 FHIR Bulk Data Access 2.0, "Bulk Data Export").

- `POST /fhir/$import` with `Content-Type: application/fhir+ndjson` and
  `Prefer: respond-async`: the body is the NDJSON itself (Puente never fetches a URL).
  202 with `Content-Location: {base}/fhir/$import-status/{id}` and an informational
  OperationOutcome.
- `GET /fhir/$import-status/{id}` (the owning system only; anyone else 404): 202 with
  `X-Progress: "<done> of <total> lines"` and `Retry-After` while queued or running; 200
  with a manifest once completed::

      {"transactionTime": instant, "request": "{base}/fhir/$import",
       "requiresAccessToken": true, "output": [],
       "error": [{"type": "OperationOutcome", "url": ".../$import-status/{id}/errors"}],
       "extension": {"status": "completed",
                     "counts": {"lines", "read", "created", "updated", "unchanged",
                                "rejected"}}}

  (`error` is empty when no line was rejected); 500 with an OperationOutcome and
  `X-Progress` if the job failed (the lines stored before the failure are kept; the job
  keeps its NDJSON until it is resumed or deleted).
- `POST /fhir/$import-status/{id}/$resume`: 202 with the same `Content-Location`; the job
  (failed, or left `running` by a worker that died) is queued again under its id and goes
  on after its last committed batch, so no line is written twice. 409 if it completed.
- `GET /fhir/$import-status/{id}/errors`: `application/fhir+ndjson`, one OperationOutcome
  per rejected line, its `diagnostics` naming the line (`line 17: error.xxx`), never
  the line's content.
- `DELETE /fhir/$import-status/{id}`: 202; the job stops before its next batch, and its
  status answers 404 from then on.

This router is included before the store's, whose `/fhir/{type}/{id}` routes would
otherwise take `$import-status/...` and `OperationDefinition/import`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from exchange import import_jobs
from exchange.models import ImportJob
from puente.errors import InvalidRequest, Issue
from puente.fhir.dates import instant
from puente.fhir.media import FHIR_NDJSON, check_content_type
from puente.fhir.outcome import operation_outcome
from puente.fhir.prefer import preferences
from puente.fhir.registry import OperationDef, declare_operation, operation_url
from puente.fhir.registry import operation_definition as definition_of
from puente.fhir.responses import FHIRResponse
from puente.settings import get_settings
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute
from translation.i18n import N_

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["FHIR bulk import"])

RETRY_AFTER_SECONDS = 2
OPERATION_PATH = "/OperationDefinition/import"

declare_operation(
    OperationDef(
        name="import",
        definition=operation_url("import"),
        documentation="Asynchronous NDJSON import by a hospital system (Prefer: respond-async).",
    ),
    system=True,
)


def operation_definition() -> dict[str, Any]:
    """The OperationDefinition the CapabilityStatement points to (valid R4)."""
    limit = get_settings().import_max_bytes
    return definition_of(
        "import",
        name="Import",
        title="Asynchronous bulk import of FHIR NDJSON",
        description=(
            "A hospital system posts FHIR resources as NDJSON (one per line) and gets "
            "202 Accepted with Content-Location naming the job's status URL. Lines are "
            "written as PUT by id (or created unless an identifier matches), in reference "
            "order; a rejected line is reported by its number, the others are stored. "
            "Importing the same NDJSON twice leaves one copy. A job that stopped part way "
            "is resumed under its id by POST [status URL]/$resume: it goes on after its "
            "last committed batch."
        ),
        affects_state=True,
        code="import",
        system=True,
        on_type=False,
        instance=False,
        parameters=[
            {
                "name": "input",
                "use": "in",
                "min": 1,
                "max": "1",
                "type": "Binary",
                "documentation": (
                    "The request body itself, Content-Type application/fhir+ndjson, at "
                    f"most {limit} bytes, sent with Prefer: respond-async."
                ),
            },
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "type": "OperationOutcome",
                "documentation": (
                    "202 Accepted with an informational OperationOutcome and "
                    "Content-Location: [base]/$import-status/[job]. Polling that URL answers "
                    "202 with X-Progress while the job runs and 200 with a Bulk Data style "
                    "manifest (counts read, created, updated, unchanged, rejected) when done; "
                    "[status URL]/errors lists one OperationOutcome per rejected line."
                ),
            },
        ],
    )


async def _payload(request: Request) -> bytes:
    """The body, read in chunks and refused (413) as soon as it passes the limit."""
    limit = get_settings().import_max_bytes
    too_large = import_jobs.PayloadTooLarge(limit=limit)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _status_url(job_id: str) -> str:
    return f"{get_settings().fhir_base_url}/$import-status/{job_id}"


@router.post("/$import", summary="Bulk import of NDJSON (asynchronous)", status_code=202)
async def kick_off(
    request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    note = ctx.note("operation", "C", entities=["$import"])
    import_jobs.authorize(caller)
    check_content_type(request, frozenset({FHIR_NDJSON}))
    if "respond-async" not in preferences(request):
        raise InvalidRequest(N_("error.import_respond_async"))
    payload = await _payload(request)
    job = await run_in_threadpool(import_jobs.kick_off, session, caller, payload=payload)
    note.entities = [f"$import/{job.id}"]
    issue = Issue(
        N_("info.import_accepted"),
        {"lines": job.lines_total},
        code="informational",
        severity="information",
    )
    return FHIRResponse(
        operation_outcome([issue], ctx.locale),
        status_code=202,
        headers={"Content-Location": _status_url(job.id)},
    )


def _counts(job: ImportJob) -> dict[str, int]:
    return {
        "lines": job.lines_total,
        "read": job.read_count,
        "created": job.created_count,
        "updated": job.updated_count,
        "unchanged": job.unchanged_count,
        "rejected": job.rejected_count,
    }


def _manifest(job: ImportJob) -> dict[str, Any]:
    base = get_settings().fhir_base_url
    errors = (
        [{"type": "OperationOutcome", "url": f"{_status_url(job.id)}/errors"}]
        if job.rejected_count
        else []
    )
    return {
        "transactionTime": instant(job.finished_at or job.updated_at),
        "request": f"{base}/$import",
        "requiresAccessToken": True,
        "output": [],
        "error": errors,
        "extension": {"status": job.status, "counts": _counts(job)},
    }


def _progress(job: ImportJob) -> str:
    return f"{job.lines_done} of {job.lines_total} lines"


@router.get("/$import-status/{job_id}", summary="Status of a bulk import")
def status(job_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep) -> Response:
    ctx.note("operation", "R", entities=[f"$import/{job_id[:36]}"])
    job = import_jobs.find(session, caller, job_id=job_id)
    if job.status == import_jobs.FAILED:
        if import_jobs.resumable(session, job):
            issue = Issue(
                N_("error.import_stopped"),
                {"done": job.lines_done, "total": job.lines_total},
                code="incomplete",
            )
        else:
            issue = Issue(N_("error.import_failed"), code="exception")
        return FHIRResponse(
            operation_outcome([issue], ctx.locale),
            status_code=500,
            headers={"X-Progress": _progress(job)},
        )
    if job.status != import_jobs.COMPLETED:
        return Response(
            status_code=202,
            headers={
                "X-Progress": _progress(job),
                "Retry-After": str(RETRY_AFTER_SECONDS),
            },
        )
    return JSONResponse(_manifest(job))


@router.get("/$import-status/{job_id}/errors", summary="The rejected lines of an import")
def errors(job_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep) -> Response:
    ctx.note("operation", "R", entities=[f"$import/{job_id[:36]}"])
    job = import_jobs.find(session, caller, job_id=job_id)
    lines = []
    for number, issues in import_jobs.rejected_lines(session, job):
        outcome = operation_outcome(issues, ctx.locale)
        for entry in outcome["issue"]:
            entry["diagnostics"] = f"line {number}: {entry['diagnostics']}"
        lines.append(json.dumps(outcome, ensure_ascii=False, separators=(",", ":")))
    body = "".join(f"{line}\n" for line in lines)
    return Response(body, media_type=FHIR_NDJSON)


@router.delete("/$import-status/{job_id}", summary="Cancel a bulk import")
def cancel(job_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep) -> Response:
    ctx.note("operation", "D", entities=[f"$import/{job_id[:36]}"])
    import_jobs.cancel(session, caller, job_id=job_id)
    return Response(status_code=202)


@router.post("/$import-status/{job_id}/$resume", summary="Resume a stopped bulk import")
def resume(job_id: str, session: SessionDep, caller: CallerDep, ctx: ContextDep) -> Response:
    """Queue a failed job (or one whose worker died) again under the same id: it goes on
    after its last committed batch. 202 with the same status URL to poll."""
    ctx.note("operation", "U", entities=[f"$import/{job_id[:36]}"])
    job = import_jobs.resume(session, caller, job_id=job_id)
    issue = Issue(
        N_("info.import_resumed"),
        {"done": job.lines_done, "total": job.lines_total},
        code="informational",
        severity="information",
    )
    return FHIRResponse(
        operation_outcome([issue], ctx.locale),
        status_code=202,
        headers={"Content-Location": _status_url(job.id)},
    )


@router.get(OPERATION_PATH, summary="The $import OperationDefinition")
def definition(ctx: ContextDep) -> FHIRResponse:
    ctx.note("read", "R", entities=["OperationDefinition/import"])
    return FHIRResponse(operation_definition())
