"""Break-the-glass over HTTP.

- `POST /fhir/Patient/{id}/$break-the-glass` (FHIR operation, Parameters in and out):
  `reason` (valueString, 10 to 2000 characters) and optional `minutes` (valueInteger,
  the policy's default and maximum); 201 with the grant's id, Patient, purpose, expiry and
  the notice that travels with what it opens, in the caller's language. Audited as event
  type `break-the-glass`, subtype `grant`, in the request's transaction.
- `/btg/reviews...`: the consent officers' review queue (JSON, like the MPI's
  `/mpi/reviews`): list, read, comment, close; every call audited (event type
  `break-the-glass`).

The FHIR router is included before the store's, whose `/fhir/{type}/{id}` routes would
otherwise take `Patient/{id}/$break-the-glass` and `OperationDefinition/...`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

import exchange.api  # noqa: F401 - registers Patient before its operation is added here
from consent import breakglass_service as btg
from consent.errors import BreakGlassParameterInvalid
from consent.policy import active_policy
from exchange.api import json_body
from puente.db import utcnow
from puente.fhir.dates import instant
from puente.fhir.registry import OperationDef, declare_operation, operation_param, operation_url
from puente.fhir.registry import operation_definition as definition_of
from puente.fhir.responses import FHIRResponse
from puente.web import BearerCallerDep, CallerDep, ContextDep, SessionDep, TransactionalRoute
from translation.i18n import gettext

fhir_router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["Break-the-glass"])
review_router = APIRouter(
    prefix="/btg", route_class=TransactionalRoute, tags=["Break-the-glass review"]
)

OPERATION_ID = "Patient-break-the-glass"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
GRANT_SYSTEM = "urn:puente:break-the-glass-grant"


# `$break-the-glass` on Patient in the CapabilityStatement.
declare_operation(
    OperationDef(
        name="break-the-glass",
        definition=operation_url(OPERATION_ID),
        documentation="Emergency access by a clinician to one patient, with a written reason.",
    ),
    "Patient",
)


def operation_definition() -> dict[str, Any]:
    """The OperationDefinition the CapabilityStatement points to (valid R4)."""
    policy = active_policy()
    return definition_of(
        OPERATION_ID,
        name="BreakTheGlass",
        title="Break-the-glass: a clinician's emergency access to one patient's records",
        description=(
            "A clinician who can read the Patient (their own hospital's record) opens, for a "
            "bounded time and with a written reason, the records of that patient that other "
            "hospitals hold (the records the master patient index links to it), except 42 "
            "CFR Part 2 records unless the operator enables the 2.51 emergency rule. The "
            "purpose of use is ETREAT. The grant is audited, reviewed by the consent "
            "officers of the hospitals involved, and the patient is told by email in their "
            "language. Other roles get 403; a Patient the caller cannot read, 404."
        ),
        affects_state=True,
        code="break-the-glass",
        resources=("Patient",),
        system=False,
        on_type=False,
        instance=True,
        parameters=[
            operation_param(
                "reason",
                "in",
                1,
                "1",
                "string",
                f"Why, in the clinician's words ({btg.REASON_MIN} to {btg.REASON_MAX} "
                "characters after trimming). Kept for the review; never sent to the patient.",
            ),
            operation_param(
                "minutes",
                "in",
                0,
                "1",
                "integer",
                f"How long the grant lasts: {policy.btg_duration_minutes} minutes unless "
                f"given, at most {policy.btg_max_duration_minutes}.",
            ),
            operation_param("grant", "out", 1, "1", "Identifier", "The grant (for the review)."),
            operation_param("patient", "out", 1, "1", "Reference", "The Patient the grant is for."),
            operation_param("purpose", "out", 1, "1", "Coding", "v3-ActReason ETREAT."),
            operation_param(
                "expires", "out", 1, "1", "instant", "The grant opens nothing from then on."
            ),
            operation_param(
                "notice",
                "out",
                1,
                "1",
                "string",
                "The notice that travels with what the grant opens, in the caller's language.",
            ),
        ],
    )


def _parameters(body: Any) -> tuple[object, int | None]:
    """`reason` and `minutes` of a Parameters body; 400 for anything else in it."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BreakGlassParameterInvalid(name="resourceType")
    unknown = sorted(set(body) - {"resourceType", "id", "meta", "parameter"})
    if unknown:
        raise BreakGlassParameterInvalid(name=unknown[0][:64])
    items = body.get("parameter") or []
    if not isinstance(items, list):
        raise BreakGlassParameterInvalid(name="parameter")
    reason: object = None
    minutes: int | None = None
    seen: set[str] = set()
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in ("reason", "minutes") or name in seen:
            raise BreakGlassParameterInvalid(name=str(name)[:64])
        seen.add(name)
        values = [k for k in item if k.startswith("value")]
        expected = "valueString" if name == "reason" else "valueInteger"
        if values != [expected] or set(item) - {"name", expected}:
            raise BreakGlassParameterInvalid(name=name)
        value = item[expected]
        if name == "reason":
            reason = value
        elif isinstance(value, bool) or not isinstance(value, int):
            raise BreakGlassParameterInvalid(name=name)
        else:
            minutes = value
    return reason, minutes


def _granted_parameters(granted: btg.Granted, locale: str) -> dict[str, Any]:
    grant = granted.grant
    policy = active_policy()
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "grant", "valueIdentifier": {"system": GRANT_SYSTEM, "value": grant.id}},
            {"name": "patient", "valueReference": {"reference": f"Patient/{grant.patient_id}"}},
            {"name": "purpose", "valueCoding": {"system": ACT_REASON, "code": grant.purpose}},
            {"name": "expires", "valueInstant": instant(grant.expires_at)},
            {"name": "notice", "valueString": gettext(locale, policy.btg_notice_key)},
        ],
    }


@fhir_router.post(
    "/Patient/{res_id}/$break-the-glass",
    summary="Break the glass: emergency access to this patient's records on the other side",
    status_code=201,
)
async def break_the_glass(
    res_id: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> FHIRResponse:
    note = ctx.note(
        "grant", "E", entities=["BreakGlassGrant"], patients=[f"Patient/{res_id[:64]}"],
        event_type=btg.EVENT_TYPE,
    )  # fmt: skip
    btg.authorize_clinician(caller)
    reason, minutes = _parameters(await json_body(request))
    granted = await run_in_threadpool(
        btg.break_glass,
        session,
        caller,
        patient_id=res_id,
        reason=reason,
        minutes=minutes,
        now=utcnow(),
    )
    note.entities = [btg.reference(granted.grant.id)]
    note.patients = list(granted.patients)
    return FHIRResponse(_granted_parameters(granted, ctx.locale), status_code=201)


@fhir_router.get(
    f"/OperationDefinition/{OPERATION_ID}", summary="The $break-the-glass OperationDefinition"
)
def definition(ctx: ContextDep) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"OperationDefinition/{OPERATION_ID}"])
    return FHIRResponse(operation_definition())


# -- the review queue ----------------------------------------------------------------------


OfficerDep = BearerCallerDep


class Comment(BaseModel):
    author: str = Field(description="consent-officer:<subject>")
    text: str
    created_at: dt.datetime


class Grant(BaseModel):
    id: str
    status: Literal["open", "closed"]
    clinician: str = Field(description="The clinician's account (token subject)")
    clinician_fhir_user: str | None = Field(examples=["Practitioner/umcep-demo-clinician"])
    system: str = Field(description="The clinician's hospital system")
    country: str | None
    patient: str = Field(description="The Patient the grant was made for", examples=["Patient/x"])
    linked: list[str] = Field(description="The Patient records the MPI links to it now")
    reason: str
    purpose: str
    granted_at: dt.datetime
    expires_at: dt.datetime
    active: bool = Field(description="Not expired yet: the grant still opens records")
    closed_at: dt.datetime | None
    closed_by: str | None
    comments: list[Comment] | None = Field(
        default=None, description="Oldest first (one grant's read)"
    )


class ReviewPage(BaseModel):
    total: int
    items: list[Grant]


class CommentRequest(BaseModel):
    text: str = Field(description="1 to 2000 characters", examples=["Called the clinician."])


class CloseRequest(BaseModel):
    comment: str | None = Field(default=None, description="An optional last comment")


def _grant(review: btg.Review, *, with_comments: bool, now: dt.datetime) -> Grant:
    grant = review.grant
    return Grant(
        id=grant.id,
        status="closed" if grant.status == "closed" else "open",
        clinician=grant.clinician,
        clinician_fhir_user=grant.clinician_fhir_user,
        system=grant.org_code,
        country=grant.country,
        patient=review.patients[0],
        linked=list(review.patients[1:]),
        reason=grant.reason,
        purpose=grant.purpose,
        granted_at=grant.granted_at,
        expires_at=grant.expires_at,
        active=grant.expires_at > now,
        closed_at=grant.closed_at,
        closed_by=grant.closed_by,
        comments=(
            [
                Comment(author=c.author, text=c.text, created_at=c.created_at)
                for c in review.comments
            ]
            if with_comments
            else None
        ),
    )


@review_router.get("/reviews", summary="Break-the-glass grants to review: open first, newest first")
def reviews(
    session: SessionDep,
    caller: OfficerDep,
    ctx: ContextDep,
    status: Literal["open", "closed"] | None = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=btg.MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReviewPage:
    note = ctx.note("review-list", "R", entities=["BreakGlassGrant"], event_type=btg.EVENT_TYPE)
    found, total = btg.reviews(session, caller, status=status, count=count, offset=offset)
    note.entities = [btg.reference(r.grant.id) for r in found] or ["BreakGlassGrant"]
    note.patients = [p for r in found for p in r.patients]
    now = utcnow()
    return ReviewPage(total=total, items=[_grant(r, with_comments=False, now=now) for r in found])


def _one(ctx: Any, subtype: str, action: str, grant_id: str, call: Any, **kwargs: Any) -> Grant:
    note = ctx.note(
        subtype, action, entities=[btg.reference(grant_id[:64])], event_type=btg.EVENT_TYPE
    )
    found: btg.Review = call(grant_id=grant_id, **kwargs)
    note.patients = list(found.patients)
    return _grant(found, with_comments=True, now=utcnow())


@review_router.get("/reviews/{grant_id}", summary="One grant, with its comments")
def review(grant_id: str, session: SessionDep, caller: OfficerDep, ctx: ContextDep) -> Grant:
    return _one(ctx, "review-read", "R", grant_id, btg.review, session=session, caller=caller)


@review_router.post("/reviews/{grant_id}/comments", summary="Comment on a grant", status_code=201)
def comment(
    grant_id: str, body: CommentRequest, session: SessionDep, caller: OfficerDep, ctx: ContextDep
) -> Grant:
    return _one(
        ctx, "review-comment", "U", grant_id, btg.comment, session=session, caller=caller,
        text=body.text, now=utcnow(),
    )  # fmt: skip


@review_router.post("/reviews/{grant_id}/close", summary="Close the review (optional comment)")
def close(
    grant_id: str,
    session: SessionDep,
    caller: OfficerDep,
    ctx: ContextDep,
    body: CloseRequest | None = None,
) -> Grant:
    return _one(
        ctx, "review-close", "U", grant_id, btg.close, session=session, caller=caller,
        text=body.comment if body else None, now=utcnow(),
    )  # fmt: skip
