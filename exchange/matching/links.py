"""Link rows: one per scored pair, each change of state kept in the history table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select
from sqlalchemy.orm import Session, aliased

from exchange.matching.models import (
    LINKED,
    MATCHER,
    POSSIBLE,
    REVIEW,
    UNLINKED,
    MatchLink,
    MatchLinkHistory,
)
from exchange.matching.score import Score
from exchange.models import StoredResource
from puente.db import utcnow


@dataclass(frozen=True)
class Side:
    """One record of a pair as it was scored."""

    pk: int
    owner: str
    version: int


def ordered(a: Side, b: Side) -> tuple[Side, Side]:
    return (a, b) if a.pk < b.pk else (b, a)


def explanation_of(score: Score) -> dict[str, object]:
    return {
        "fields": [
            {"field": f.field, "level": f.level, "weight": round(f.weight, 3)}
            for f in score.explanation
        ],
        "contradictions": list(score.contradictions),
    }


def find(session: Session, a_pk: int, b_pk: int) -> MatchLink | None:
    left, right = min(a_pk, b_pk), max(a_pk, b_pk)
    return session.scalars(
        select(MatchLink).where(MatchLink.left_pk == left, MatchLink.right_pk == right)
    ).one_or_none()


def of_record(session: Session, pk: int) -> list[MatchLink]:
    return list(
        session.scalars(
            select(MatchLink).where(or_(MatchLink.left_pk == pk, MatchLink.right_pk == pk))
        )
    )


def other_pk(link: MatchLink, pk: int) -> int:
    return link.right_pk if link.left_pk == pk else link.left_pk


def other_owner(link: MatchLink, pk: int) -> str:
    return link.right_owner if link.left_pk == pk else link.left_owner


def _history(link: MatchLink, reason: str) -> MatchLinkHistory:
    return MatchLinkHistory(
        link_id=link.id,
        status=link.status,
        grade=link.grade,
        score=link.score,
        model_version=link.model_version,
        left_version=link.left_version,
        right_version=link.right_version,
        decided_by=link.decided_by,
        reason=reason,
        recorded_at=link.updated_at,
    )


class Writes:
    """The link rows and history of a batch of evaluations, sent together: the new links
    in multi-row INSERTs returning their ids, the changed ones in one executemany UPDATE,
    then the history rows in multi-row INSERTs, in the order they happened. (The ORM's
    flush inserted a row at a time: it needs each new row's id back in order.) Until
    `send`, nothing is written: the batch must not query the link tables meanwhile (it
    reads them once, before)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.new: list[MatchLink] = []  # transient until sent: their ids come back then
        self.history: list[tuple[MatchLink, dict[str, Any]]] = []

    def added(self, link: MatchLink) -> None:
        self.new.append(link)

    def changed(self, link: MatchLink, reason: str) -> None:
        row = _history(link, reason)
        values = {c.key: getattr(row, c.key) for c in MatchLinkHistory.__table__.columns}
        self.history.append((link, values))

    def send(self) -> None:
        self.session.flush()
        if self.new:
            columns = [c.key for c in MatchLink.__table__.columns if c.key != "id"]
            rows = [{key: getattr(link, key) for key in columns} for link in self.new]
            statement = insert(MatchLink).returning(
                MatchLink.id, MatchLink.left_pk, MatchLink.right_pk
            )
            ids = {(left, right): pk for pk, left, right in self.session.execute(statement, rows)}
            for link in self.new:
                link.id = ids[(link.left_pk, link.right_pk)]
        if self.history:
            rows = [{**values, "link_id": link.id} for link, values in self.history]
            for row in rows:
                del row["id"]
            self.session.execute(insert(MatchLinkHistory), rows)
        self.new.clear()
        self.history.clear()


def record(
    session: Session,
    *,
    a: Side,
    b: Side,
    score: Score,
    model_version: str,
    status: str,
    decided_by: str,
    reason: str,
    link: MatchLink | None = None,
    writes: Writes | None = None,
) -> MatchLink:
    """Create or update the pair's link with a new score and status; history when the
    status, the decider, the scored versions or the scoring model changed. With `writes`,
    `link` is the pair's link if it has one (the caller read it) and the rows wait for
    `writes.send()`."""
    left, right = ordered(a, b)
    if writes is None:
        link = link or find(session, left.pk, right.pk)
    explanation = explanation_of(score)
    if link is None:
        link = MatchLink(left_pk=left.pk, right_pk=right.pk, left_owner=left.owner)
        link.right_owner = right.owner
        if writes is None:
            session.add(link)
        else:
            writes.added(link)
        changed = True
    else:
        changed = (
            link.status != status
            or link.decided_by != decided_by
            or (link.left_version, link.right_version) != (left.version, right.version)
            or link.model_version != model_version
        )
    link.left_version, link.right_version = left.version, right.version
    link.score, link.weight, link.grade = score.probability, score.weight, score.grade
    link.model_version, link.explanation = model_version, explanation
    link.status, link.decided_by = status, decided_by
    link.updated_at = utcnow()
    if writes is not None:
        if changed:
            writes.changed(link, reason)
        return link
    session.flush()
    if changed:
        session.add(_history(link, reason))
    return link


def decide(
    session: Session,
    link: MatchLink,
    *,
    status: str,
    decided_by: str,
    reason: str,
    writes: Writes | None = None,
) -> None:
    """A new status for a link as scored (a steward's decision, a conflict, a deletion)."""
    if link.status == status and link.decided_by == decided_by:
        return
    link.status, link.decided_by = status, decided_by
    link.updated_at = utcnow()
    if writes is not None:
        writes.changed(link, reason)
        return
    session.flush()
    session.add(_history(link, reason))


def unlink_deleted(session: Session, *, pk: int) -> None:
    """A deleted record keeps no link, no review and no candidacy; stewards' rejections stay."""
    for link in of_record(session, pk):
        if link.status in (LINKED, REVIEW, POSSIBLE):
            decide(session, link, status=UNLINKED, decided_by=MATCHER, reason="deleted")


def linked_ids(
    session: Session, pks: Iterable[int], *, visible: ColumnElement[bool]
) -> dict[int, list[str]]:
    """For each of `pks`, the ids of the Patients linked to it that pass `visible` (a clause
    on `StoredResource`: the store's visibility rule for the caller), sorted. One query
    when none is linked, the common case of a read."""
    wanted = list(dict.fromkeys(pks))
    if not wanted:
        return {}
    pairs = session.execute(
        select(MatchLink.left_pk, MatchLink.right_pk).where(
            MatchLink.status == LINKED,
            or_(MatchLink.left_pk.in_(wanted), MatchLink.right_pk.in_(wanted)),
        )
    ).all()
    if not pairs:
        return {}
    others = {pk for pair in pairs for pk in pair}
    ids = dict(
        session.execute(
            select(StoredResource.pk, StoredResource.res_id).where(
                StoredResource.pk.in_(others), StoredResource.deleted.is_(False), visible
            )
        ).all()
    )
    asked = set(wanted)
    found: dict[int, list[str]] = {}
    for left, right in pairs:
        for mine, theirs in ((left, right), (right, left)):
            if mine in asked and theirs in ids:
                found.setdefault(mine, []).append(ids[theirs])
    return {pk: sorted(found_ids) for pk, found_ids in found.items()}


def linked_resources(
    session: Session, pk: int, *, visible: ColumnElement[bool]
) -> list[StoredResource]:
    """The current rows of the Patients linked to `pk` that pass `visible`."""
    other = aliased(MatchLink)
    statement = (
        select(StoredResource)
        .join(
            other,
            or_(
                (other.left_pk == pk) & (other.right_pk == StoredResource.pk),
                (other.right_pk == pk) & (other.left_pk == StoredResource.pk),
            ),
        )
        .where(other.status == LINKED, StoredResource.deleted.is_(False), visible)
        .order_by(StoredResource.res_id)
    )
    return list(session.scalars(statement))


def with_links(content: dict[str, Any], ids: Iterable[str]) -> dict[str, Any]:
    """`content` with a `seealso` `Patient.link` to each of `ids` after the sender's own
    links (a copy: the stored document is never changed)."""
    added = [{"other": {"reference": f"Patient/{res_id}"}, "type": "seealso"} for res_id in ids]
    if not added:
        return content
    return {**content, "link": [*(content.get("link") or []), *added]}


def people(session: Session, patient_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each of `patient_ids` (Patient res_ids), the ids of every Patient record of the
    same person: itself and the records linked to it, transitively (a person registered at
    three hospitals is linked pairwise). The disclosure gate's view of "the patient"."""
    wanted = set(patient_ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(StoredResource.pk, StoredResource.res_id).where(
            StoredResource.res_type == "Patient", StoredResource.res_id.in_(sorted(wanted))
        )
    ).all()
    id_of: dict[int, str] = dict(rows)
    neighbours: dict[int, set[int]] = {}
    frontier = set(id_of)
    seen = set(frontier)
    while frontier:
        pairs = session.execute(
            select(MatchLink.left_pk, MatchLink.right_pk).where(
                MatchLink.status == LINKED,
                or_(MatchLink.left_pk.in_(frontier), MatchLink.right_pk.in_(frontier)),
            )
        ).all()
        found: set[int] = set()
        for left, right in pairs:
            neighbours.setdefault(left, set()).add(right)
            neighbours.setdefault(right, set()).add(left)
            found.update((left, right))
        frontier = found - seen
        seen |= frontier
    missing = seen - set(id_of)
    if missing:
        id_of.update(
            session.execute(
                select(StoredResource.pk, StoredResource.res_id).where(
                    StoredResource.pk.in_(sorted(missing))
                )
            ).all()
        )
    result: dict[str, frozenset[str]] = {res_id: frozenset({res_id}) for res_id in wanted}
    for pk, res_id in list(id_of.items()):
        if res_id not in wanted:
            continue
        component, stack = {pk}, [pk]
        while stack:
            for other in neighbours.get(stack.pop(), ()):
                if other not in component:
                    component.add(other)
                    stack.append(other)
        result[res_id] = frozenset(id_of[p] for p in component if p in id_of)
    return result
