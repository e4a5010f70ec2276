"""The review queue's JSON API for consent officers (data stewards): `/mpi/reviews` and
`/mpi/links`. Bearer tokens as under `/fhir`; errors are OperationOutcomes in the caller's
language; 403 for every role but `consent-officer`. Each call is audited with the two
Patients it shows or decides (event type `mpi`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from exchange.matching import review
from puente.context import RequestContext
from puente.web import BearerCallerDep, ContextDep, SessionDep, TransactionalRoute

router = APIRouter(prefix="/mpi", route_class=TransactionalRoute, tags=["Patient match review"])

# What a steward needs to decide a pair; the rest of the record is not disclosed.
MATCH_ELEMENTS = ("name", "birthDate", "gender", "identifier", "telecom", "address")
PATIENT_REFERENCE = r"^Patient/[A-Za-z0-9\-.]{1,64}$"


StewardDep = BearerCallerDep


class FieldWeight(BaseModel):
    field: str
    level: str
    weight: float = Field(description="log2 Bayes factor this field contributed")


class Record(BaseModel):
    reference: str = Field(examples=["Patient/hgcj-123"])
    system: str = Field(description="The hospital system that owns the record")
    version: int = Field(description="The version that was scored")
    current_version: int
    resource: dict[str, Any] = Field(description="The match-relevant elements, as sent")
    features: dict[str, Any] = Field(description="What the matcher compared (normalised)")


class State(BaseModel):
    status: str
    grade: str
    score: float
    model_version: str
    left_version: int
    right_version: int
    decided_by: str
    reason: str = Field(description="scored, conflict, changed, rescored, deleted, accept, ...")
    recorded_at: dt.datetime


class Pair(BaseModel):
    id: int
    status: str = Field(description="linked, review, possible, rejected or unlinked")
    grade: str = Field(description="certain, probable, possible or certainly-not")
    score: float = Field(description="Match probability 0-1")
    weight: float
    model_version: str
    decided_by: str = Field(description="`matcher`, or the steward (role:subject)")
    updated_at: dt.datetime
    explanation: list[FieldWeight]
    contradictions: list[str]
    left: Record
    right: Record
    history: list[State] | None = Field(
        default=None, description="Every state of the pair, oldest first (one pair's read)"
    )


class ReviewPage(BaseModel):
    total: int
    items: list[Pair]


class LinkRequest(BaseModel):
    first: str = Field(pattern=PATIENT_REFERENCE, examples=["Patient/hgcj-123"])
    second: str = Field(pattern=PATIENT_REFERENCE, examples=["Patient/umcep-456"])


def _record(row: Any, version: int, found: dict[str, Any]) -> Record:
    content = row.content or {}
    return Record(
        reference=f"Patient/{row.res_id}",
        system=row.owner,
        version=version,
        current_version=row.version,
        resource={k: content[k] for k in MATCH_ELEMENTS if k in content},
        features=found,
    )


def _pair(pair: review.Pair) -> Pair:
    link = pair.link
    explanation = link.explanation or {}
    return Pair(
        id=link.id,
        status=link.status,
        grade=link.grade,
        score=link.score,
        weight=link.weight,
        model_version=link.model_version,
        decided_by=link.decided_by,
        updated_at=link.updated_at,
        explanation=[FieldWeight(**f) for f in explanation.get("fields", [])],
        contradictions=list(explanation.get("contradictions", [])),
        left=_record(pair.left, link.left_version, pair.left_features),
        right=_record(pair.right, link.right_version, pair.right_features),
    )


def _patients(pairs: list[review.Pair]) -> list[str]:
    return [f"Patient/{row.res_id}" for p in pairs for row in (p.left, p.right)]


@router.get("/reviews", summary="Pairs waiting for a steward, most likely first")
def pending(
    session: SessionDep,
    caller: StewardDep,
    ctx: ContextDep,
    count: Annotated[int, Query(alias="_count", ge=1, le=review.MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReviewPage:
    note = ctx.note("review-list", "R", entities=["MatchLink"], event_type="mpi")
    pairs, total = review.pending(session, caller, count=count, offset=offset)
    note.entities = [f"MatchLink/{p.link.id}" for p in pairs] or ["MatchLink"]
    note.patients = _patients(pairs)
    return ReviewPage(total=total, items=[_pair(p) for p in pairs])


def _decided(ctx: RequestContext, subtype: str, link_id: int, decide: Any, **kwargs: Any) -> Pair:
    note = ctx.note(subtype, "U", entities=[f"MatchLink/{link_id}"], event_type="mpi")
    decided: review.Pair = decide(link_id=link_id, **kwargs)
    note.patients = _patients([decided])
    return _pair(decided)


@router.post("/reviews/{link_id}/accept", summary="The pair is one person: link it")
def accept(link_id: int, session: SessionDep, caller: StewardDep, ctx: ContextDep) -> Pair:
    return _decided(ctx, "review-accept", link_id, review.accept, session=session, caller=caller)


@router.post("/reviews/{link_id}/reject", summary="Two people: not proposed again as they are")
def reject(link_id: int, session: SessionDep, caller: StewardDep, ctx: ContextDep) -> Pair:
    return _decided(ctx, "review-reject", link_id, review.reject, session=session, caller=caller)


@router.post("/links/{link_id}/unlink", summary="Undo a link; not proposed again as they are")
def unlink(link_id: int, session: SessionDep, caller: StewardDep, ctx: ContextDep) -> Pair:
    return _decided(ctx, "link-unlink", link_id, review.unlink, session=session, caller=caller)


@router.get("/links/{link_id}", summary="One pair, with its explanation and history")
def link(link_id: int, session: SessionDep, caller: StewardDep, ctx: ContextDep) -> Pair:
    note = ctx.note("link-read", "R", entities=[f"MatchLink/{link_id}"], event_type="mpi")
    found = review.pair(session, caller, link_id=link_id)
    note.patients = _patients([found])
    states = [
        State(
            status=h.status,
            grade=h.grade,
            score=h.score,
            model_version=h.model_version,
            left_version=h.left_version,
            right_version=h.right_version,
            decided_by=h.decided_by,
            reason=h.reason,
            recorded_at=h.recorded_at,
        )
        for h in review.history(session, caller, link_id=link_id)
    ]
    return _pair(found).model_copy(update={"history": states})


@router.get("/links", summary="Every link of one of the steward's hospital's Patients")
def links_of(
    patient: Annotated[str, Query(pattern=PATIENT_REFERENCE)],
    session: SessionDep,
    caller: StewardDep,
    ctx: ContextDep,
) -> list[Pair]:
    note = ctx.note("link-search", "R", entities=[patient], event_type="mpi")
    found = review.links_of(session, caller, patient=patient)
    note.patients = [patient, *_patients(found)]
    return [_pair(p) for p in found]


@router.post("/links", summary="Link two records by hand", status_code=201)
def link_by_hand(
    body: LinkRequest, session: SessionDep, caller: StewardDep, ctx: ContextDep
) -> Pair:
    note = ctx.note("link-create", "C", entities=["MatchLink"], event_type="mpi")
    note.patients = [body.first, body.second]
    made = review.link_by_hand(session, caller, first=body.first, second=body.second)
    note.entities = [f"MatchLink/{made.link.id}"]
    return _pair(made)
