"""Transactions and audit around every endpoint, and the dependencies endpoints read like.

`TransactionalRoute` commits the request's session before the response leaves (so a client
never hears 201 for data that did not commit), appends the request's audit notes in that
same transaction, and on failure rolls back and records the failure in a new transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from puente.audit import service as audit
from puente.auth.caller import Caller
from puente.context import RequestContext, context_of
from puente.db import is_transient, session_factory
from puente.errors import PuenteError, Transient, Unauthenticated
from puente.settings import get_settings

log = logging.getLogger("puente.request")


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, PuenteError):
        return exc.status_code
    if isinstance(exc, HTTPException):
        return exc.status_code
    if type(exc).__name__ == "RequestValidationError":
        return 400
    if is_transient(exc):
        return Transient.status_code
    return 500


def _write_audit(session: Session, ctx: RequestContext, outcome: int, detail: str | None) -> None:
    settings = get_settings()
    events: list[audit.Event] = []
    if ctx.disclosure is not None and outcome == audit.SUCCESS:
        # Written whatever `audit_reads` says: the accounting of disclosures reads them.
        events.append(
            audit.Event(
                event_type="disclosure",
                subtype=ctx.disclosure.subtype,
                action="R",
                outcome=outcome,
                outcome_detail="break-the-glass" if ctx.disclosure.break_the_glass else None,
                caller=ctx.caller,
                request_id=ctx.request_id,
                source_ip=ctx.source_ip,
                entities=ctx.disclosure.entities,
                patients=ctx.disclosure.patients,
            )
        )
    for item in ctx.audit:
        if item.reads and not settings.audit_reads and outcome == audit.SUCCESS:
            continue
        events.append(
            audit.Event(
                event_type=item.event_type,
                subtype=item.subtype,
                action=item.action,
                outcome=outcome,
                outcome_detail=detail,
                caller=ctx.caller,
                request_id=ctx.request_id,
                source_ip=ctx.source_ip,
                entities=item.entities,
                patients=item.patients,
            )
        )
    audit.append_all(session, events)


def _finish_success(ctx: RequestContext) -> None:
    session = ctx.session
    if session is None and not ctx.audit:
        return
    if session is None:
        session = session_factory()()
    try:
        _write_audit(session, ctx, audit.SUCCESS, None)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        ctx.session = None


def _finish_failure(ctx: RequestContext, exc: BaseException) -> None:
    if ctx.session is not None:
        ctx.session.rollback()
        ctx.session.close()
        ctx.session = None
    if not ctx.audit:
        return
    status = _status_of(exc)
    outcome = audit.SERIOUS_FAILURE if status >= 500 else audit.MINOR_FAILURE
    detail = exc.issues[0].message_key if isinstance(exc, PuenteError) else f"http-{status}"
    session = session_factory()()
    try:
        _write_audit(session, ctx, outcome, detail)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("audit_failure_not_recorded", extra={"request_id": ctx.request_id})
        raise
    finally:
        session.close()


class TransactionalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            ctx = context_of(request)
            try:
                response = await original(request)
            except BaseException as exc:
                await run_in_threadpool(_finish_failure, ctx, exc)
                raise
            await run_in_threadpool(_finish_success, ctx)
            return response

        return handler


# The dependencies are coroutines although they never wait: FastAPI runs a plain function
# dependency in the thread pool, a thread hand-off each (three per request) for work that
# takes microseconds. None of them does I/O: a Session connects on its first statement.


async def get_session(request: Request) -> Session:
    ctx = context_of(request)
    if ctx.session is None:
        ctx.session = session_factory()()
    return ctx.session


async def get_context(request: Request) -> RequestContext:
    return context_of(request)


async def get_caller(request: Request) -> Caller:
    caller = context_of(request).caller
    if caller is None:  # the middleware authenticates first; this is a second lock
        raise Unauthenticated()
    return caller


async def bearer_caller(request: Request) -> Caller:
    """The bearer token's caller, for APIs outside `/fhir` (the middleware authenticates
    only there), with the language it prefers."""
    from puente.auth import tokens
    from translation.i18n import negotiate

    ctx = context_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    settings = get_settings()
    caller = tokens.read(settings, token.strip())
    ctx.caller = caller
    if caller.locale:
        ctx.locale = negotiate(
            request.headers.get("accept-language"),
            preference=caller.locale,
            default=settings.default_locale,
        )
    return caller


SessionDep = Annotated[Session, Depends(get_session)]
ContextDep = Annotated[RequestContext, Depends(get_context)]
CallerDep = Annotated[Caller, Depends(get_caller)]
BearerCallerDep = Annotated[Caller, Depends(bearer_caller)]
