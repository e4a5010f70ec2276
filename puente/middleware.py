"""The outer layer of every request: id, language, authentication before routing, the
access log line, and a last net that turns any unexpected failure into a 500 with no text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from puente.auth import tokens
from puente.context import context_of
from puente.db import is_transient
from puente.errors import PuenteError, Transient, Unauthenticated
from puente.fhir.handlers import error_response, internal_error_response
from puente.fhir.media import check_accept
from puente.settings import get_settings
from translation.i18n import bcp47, negotiate

access_log = logging.getLogger("puente.access")
error_log = logging.getLogger("puente.error")

PUBLIC_FHIR_PATHS = frozenset({"/fhir/metadata", "/fhir/.well-known/smart-configuration"})


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def route_template(app: FastAPI, request: Request) -> str:
    """The template of the route that served the request (`/fhir/{type}/{id}`), never the
    concrete path, which may carry identifiers (a CURP, a name)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    # Not routed: refused before routing (401, 406) or no route at all. Match the path
    # against every route, those of included routers too, as the router would.
    partial: str | None = None
    for candidate in _flat_routes(app):
        match, _ = candidate.matches(request.scope)
        template = getattr(candidate, "path", None)
        if not isinstance(template, str):
            continue
        if match is Match.FULL:
            return template
        if match is Match.PARTIAL and partial is None:
            partial = template  # the path matches, the method does not (405)
    return partial or "<unmatched>"


def _flat_routes(app: FastAPI) -> Iterable[BaseRoute]:
    try:  # FastAPI >= 0.120 keeps included routers as one entry each
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies every included route into app.routes
        return app.router.routes
    return iter_route_contexts(app.router.routes)  # type: ignore[return-value]


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def puente_layer(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        settings = get_settings()
        ctx = context_of(request)
        ctx.locale = negotiate(
            request.headers.get("accept-language"), default=settings.default_locale
        )
        response: Response
        try:
            path = request.url.path
            if path == "/fhir" or path.startswith("/fhir/"):
                if path not in PUBLIC_FHIR_PATHS:
                    token = _bearer(request)
                    if token is None:
                        raise Unauthenticated()
                    ctx.caller = tokens.read(settings, token)
                    if ctx.caller.locale:
                        ctx.locale = negotiate(
                            request.headers.get("accept-language"),
                            preference=ctx.caller.locale,
                            default=settings.default_locale,
                        )
                check_accept(request)
            response = await call_next(request)
        except PuenteError as exc:
            response = error_response(request, exc)
        except Exception as exc:  # noqa: BLE001 - the last net: a 500 without exception text
            if is_transient(exc):
                # The database aborted this request so that a concurrent one could finish
                # (deadlock, serialization failure, SQLite's lock): nothing of it was
                # stored, and sending it again will succeed.
                error_log.warning("transient_conflict", extra={"request_id": ctx.request_id})
                response = error_response(request, Transient())
            else:
                error_log.error(
                    "unhandled_exception",
                    exc_info=(type(exc), exc, exc.__traceback__),
                    extra={"request_id": ctx.request_id},
                )
                response = internal_error_response(request)
        response.headers["X-Request-ID"] = ctx.request_id
        response.headers.setdefault("Content-Language", bcp47(ctx.locale))
        response.headers.setdefault("Vary", "Accept, Accept-Language, Authorization")
        access_log.info(
            "request",
            extra={
                "request_id": ctx.request_id,
                "method": request.method,
                "route": route_template(app, request),
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "role": ctx.caller.role.value if ctx.caller else None,
            },
        )
        return response
