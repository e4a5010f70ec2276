"""The review queue: consent officers, as the MPI's data stewards, decide doubtful pairs,
link records by hand and undo links. A steward sees the pairs that involve a record of
their own hospital; everything else is answered as if it did not exist (404).

Showing a pair discloses both records' match-relevant fields to the steward: the API
audits every listing and every decision with both Patients named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from exchange.matching import features as feature_module
from exchange.matching import links, versions
from exchange.matching.errors import LinkNotFound, NotPending, SameSystem, StewardOnly
from exchange.matching.links import Side
from exchange.matching.models import (
    LINKED,
    REJECTED,
    REVIEW,
    UNLINKED,
    MatchLink,
    MatchLinkHistory,
    MatchRecord,
)
from exchange.matching.score import score
from exchange.models import StoredResource
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from puente.errors import NotFound

STEWARDS = frozenset({Role.CONSENT_OFFICER})
MAX_PAGE = 100


@dataclass(frozen=True)
class Pair:
    link: MatchLink
    left: StoredResource
    right: StoredResource
    left_features: dict[str, Any]
    right_features: dict[str, Any]


def authorize(caller: Caller) -> str:
    """The steward's hospital system, or 403 for every other role."""
    if caller.role not in STEWARDS or not caller.org_code:
        raise StewardOnly()
    return caller.org_code


def steward(caller: Caller) -> str:
    """Who decided, as the link and its history name them."""
    return f"{caller.role.value}:{caller.subject}"[:255]


def _theirs(system: str) -> Any:
    return or_(MatchLink.left_owner == system, MatchLink.right_owner == system)


def _pairs(session: Session, found: list[MatchLink]) -> list[Pair]:
    pks = {pk for link in found for pk in (link.left_pk, link.right_pk)}
    rows = {
        r.pk: r for r in session.scalars(select(StoredResource).where(StoredResource.pk.in_(pks)))
    }
    records = {
        r.resource_pk: r.features
        for r in session.scalars(select(MatchRecord).where(MatchRecord.resource_pk.in_(pks)))
    }
    return [
        Pair(
            link,
            rows[link.left_pk],
            rows[link.right_pk],
            records.get(link.left_pk, {}),
            records.get(link.right_pk, {}),
        )
        for link in found
    ]


def pending(session: Session, caller: Caller, *, count: int, offset: int) -> tuple[list[Pair], int]:
    """The steward's pairs waiting for review, most likely first; and how many there are."""
    system = authorize(caller)
    where = (MatchLink.status == REVIEW, _theirs(system))
    total = session.scalar(select(func.count()).select_from(MatchLink).where(*where)) or 0
    found = list(
        session.scalars(
            select(MatchLink)
            .where(*where)
            .order_by(MatchLink.score.desc(), MatchLink.id)
            .offset(offset)
            .limit(min(count, MAX_PAGE))
        )
    )
    return _pairs(session, found), total


def _link(session: Session, system: str, link_id: int) -> MatchLink:
    link = session.scalars(
        select(MatchLink).where(MatchLink.id == link_id, _theirs(system))
    ).one_or_none()
    if link is None:
        raise LinkNotFound(link=link_id)
    return link


def pair(session: Session, caller: Caller, *, link_id: int) -> Pair:
    system = authorize(caller)
    return _pairs(session, [_link(session, system, link_id)])[0]


def history(session: Session, caller: Caller, *, link_id: int) -> list[MatchLinkHistory]:
    """Every state the pair went through, oldest first."""
    system = authorize(caller)
    link = _link(session, system, link_id)
    statement = (
        select(MatchLinkHistory)
        .where(MatchLinkHistory.link_id == link.id)
        .order_by(MatchLinkHistory.id)
    )
    return list(session.scalars(statement))


def _decide(
    session: Session, caller: Caller, *, link_id: int, status: str, reason: str, was: str
) -> Pair:
    system = authorize(caller)
    link = _link(session, system, link_id)
    if link.status != was:
        raise NotPending(link=link_id)
    links.decide(session, link, status=status, decided_by=steward(caller), reason=reason)
    return _pairs(session, [link])[0]


def accept(session: Session, caller: Caller, *, link_id: int) -> Pair:
    """The pair is one person: linked."""
    return _decide(session, caller, link_id=link_id, status=LINKED, reason="accept", was=REVIEW)


def reject(session: Session, caller: Caller, *, link_id: int) -> Pair:
    """Two people: never proposed again for these versions."""
    return _decide(session, caller, link_id=link_id, status=REJECTED, reason="reject", was=REVIEW)


def unlink(session: Session, caller: Caller, *, link_id: int) -> Pair:
    """Undo a link (the matcher's or a steward's); it is not proposed again for these versions."""
    return _decide(session, caller, link_id=link_id, status=UNLINKED, reason="unlink", was=LINKED)


def _patient(session: Session, reference: str) -> MatchRecord:
    res_type, _, res_id = reference.partition("/")
    row = None
    if res_type == "Patient" and res_id:
        row = session.scalars(
            select(MatchRecord)
            .join(StoredResource, StoredResource.pk == MatchRecord.resource_pk)
            .where(
                StoredResource.res_type == "Patient",
                StoredResource.res_id == res_id,
                StoredResource.deleted.is_(False),
            )
        ).one_or_none()
    if row is None:
        raise NotFound(resource_type="Patient", res_id=res_id[:64])
    return row


def link_by_hand(session: Session, caller: Caller, *, first: str, second: str) -> Pair:
    """A steward links two records (one of them their hospital's) the matcher did not."""
    system = authorize(caller)
    a, b = _patient(session, first), _patient(session, second)
    if system not in (a.owner, b.owner):
        raise NotFound(resource_type="Patient", res_id=(b if a.owner != system else a).res_id)
    if a.owner == b.owner:
        raise SameSystem()
    model = versions.active(session)
    found = score(feature_module.from_json(a.features), feature_module.from_json(b.features), model)
    link = links.record(
        session,
        a=Side(a.resource_pk, a.owner, a.version),
        b=Side(b.resource_pk, b.owner, b.version),
        score=found,
        model_version=model.version,
        status=LINKED,
        decided_by=steward(caller),
        reason="link",
    )
    return _pairs(session, [link])[0]


def links_of(session: Session, caller: Caller, *, patient: str) -> list[Pair]:
    """Every link of one of the steward's hospital's Patients, whatever its status."""
    system = authorize(caller)
    record = _patient(session, patient)
    if record.owner != system:
        raise NotFound(resource_type="Patient", res_id=record.res_id)
    found = sorted(links.of_record(session, record.resource_pk), key=lambda link: -link.score)
    return _pairs(session, found)


def counts(session: Session) -> dict[str, int]:
    """How many pairs are in each status (operators and the demo; no patient data)."""
    statement = select(MatchLink.status, func.count()).group_by(MatchLink.status)
    return {str(status): int(number) for status, number in session.execute(statement).all()}
