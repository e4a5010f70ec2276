"""What the shell knows about the request in flight: id, language, caller, audit notes."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy.orm import Session
from starlette.requests import Request

from puente.auth.caller import Caller

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass
class AuditNote:
    """One audit row a request will append: on success in its own transaction, on failure
    in a new one after the rollback."""

    subtype: str  # read, vread, search-type, create, update, delete, history, operation...
    action: str  # C R U D E
    entities: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    event_type: str = "rest"
    # A query (search, $match, $ihe-pix: action E in IHE BALP) reads like a read does:
    # `audit_reads` governs it too.
    query: bool = False

    @property
    def reads(self) -> bool:
        return self.action == "R" or self.query


@dataclass
class Disclosure:
    """Records that crossed to the caller from another hospital in this request: one
    `disclosure` audit row per request (the accounting of disclosures reads them)."""

    entities: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    break_the_glass: bool = False
    # How the records were asked for (read, search-type, match...): the first path's.
    subtype: str = "read"


@dataclass
class RequestContext:
    request_id: str
    locale: str
    source_ip: str | None
    caller: Caller | None = None
    session: Session | None = None
    audit: list[AuditNote] = field(default_factory=list)
    disclosure: Disclosure | None = None

    def disclosed(
        self,
        entities: list[str],
        patients: list[str],
        *,
        break_the_glass: bool,
        subtype: str,
    ) -> None:
        found = self.disclosure = self.disclosure or Disclosure(subtype=subtype)
        found.entities = list(dict.fromkeys([*found.entities, *entities]))
        found.patients = list(dict.fromkeys([*found.patients, *patients]))
        found.break_the_glass = found.break_the_glass or break_the_glass

    def note(
        self,
        subtype: str,
        action: str,
        *,
        entities: list[str] | None = None,
        patients: list[str] | None = None,
        event_type: str = "rest",
        query: bool = False,
    ) -> AuditNote:
        item = AuditNote(subtype, action, entities or [], patients or [], event_type, query)
        self.audit.append(item)
        return item


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID if it is a plain token, else a fresh one."""
    if header and _SAFE_REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def context_of(request: Request) -> RequestContext:
    ctx = getattr(request.state, "ctx", None)
    if ctx is None:
        ctx = RequestContext(
            request_id=request_id_from(request.headers.get("x-request-id")),
            locale="en_US",
            source_ip=request.client.host if request.client else None,
        )
        request.state.ctx = ctx
        _current.set(ctx)
    assert isinstance(ctx, RequestContext)
    return ctx


_current: ContextVar[RequestContext | None] = ContextVar("puente_request", default=None)


def current_context() -> RequestContext | None:
    """The request in flight on this thread or task, if any (None in tasks and the CLI)."""
    return _current.get()
