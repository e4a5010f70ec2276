"""One way every error leaves the API: an OperationOutcome in the caller's language."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from puente.context import context_of
from puente.errors import Issue, MethodNotAllowed, NotFound, PuenteError
from puente.fhir.outcome import operation_outcome
from puente.fhir.responses import FHIRResponse
from translation.i18n import N_


def error_response(request: Request, exc: PuenteError) -> Response:
    ctx = context_of(request)
    body = operation_outcome(exc.issues, ctx.locale, request_id=ctx.request_id)
    headers = {**exc.headers, "X-Request-ID": ctx.request_id}
    return FHIRResponse(body, status_code=exc.status_code, headers=headers)


def _loc_to_expression(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


async def _puente_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PuenteError)
    return error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(request, NotFound(N_("error.route_not_found")))
    if exc.status_code == 405:
        return error_response(request, MethodNotAllowed())
    err = PuenteError(N_("error.invalid"))
    err.status_code = exc.status_code  # type: ignore[misc]
    return error_response(request, err)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # The offending value is never echoed: it may be a name or a CURP.
    issues = [
        Issue(
            N_("error.request_field_invalid"),
            {"field": _loc_to_expression(tuple(e.get("loc", ())))},
            expression=(_loc_to_expression(tuple(e.get("loc", ()))),),
        )
        for e in exc.errors()[:20]
    ]
    return error_response(request, PuenteError(issues=issues))


def internal_error_response(request: Request) -> Response:
    ctx = context_of(request)
    issue = Issue(N_("error.internal"), {"request_id": ctx.request_id}, code="exception")
    body = operation_outcome([issue], ctx.locale, request_id=ctx.request_id)
    return FHIRResponse(body, status_code=500, headers={"X-Request-ID": ctx.request_id})


def install(app: FastAPI) -> None:
    app.add_exception_handler(PuenteError, _puente_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
