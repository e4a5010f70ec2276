"""The outer layer of every request: id, language, authentication before routing, the
access log line, and a last net that turns any unexpected failure into a 500 with no text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class PuenteLayer:
    """Pure ASGI rather than `@app.middleware("http")`: Starlette's `BaseHTTPMiddleware`
    runs the app in a task of its own and streams its response back through a memory
    channel (measured together with the pool's idle-only ping: the server's CPU per read
    by id fell by about a sixth)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        settings = get_settings()
        request = Request(scope, receive)
        ctx = context_of(request)
        ctx.locale = negotiate(
            request.headers.get("accept-language"), default=settings.default_locale
        )
        status: int | None = None

        async def send_marked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = ctx.request_id
                headers.setdefault("Content-Language", bcp47(ctx.locale))
                headers.setdefault("Vary", "Accept, Accept-Language, Authorization")
            await send(message)

        response: Response | None = None
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
            await self.app(scope, receive, send_marked)
        except PuenteError as exc:
            response = error_response(request, exc)
        except Exception as exc:  # noqa: BLE001 - the last net: a 500 without exception text
            if status is not None:
                # The response had begun: the server can only cut it off. Logged here, not
                # raised to the server, whose log would print the exception's text.
                error_log.error(
                    "failure_after_response_began",
                    exc_info=(type(exc), exc, exc.__traceback__),
                    extra={"request_id": ctx.request_id},
                )
            elif is_transient(exc):
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
        if response is not None:
            await response(scope, receive, send_marked)
        access_log.info(
            "request",
            extra={
                "request_id": ctx.request_id,
                "method": request.method,
                "route": route_template(scope["app"], request),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "role": ctx.caller.role.value if ctx.caller else None,
            },
        )


def install(app: FastAPI) -> None:
    app.add_middleware(PuenteLayer)
