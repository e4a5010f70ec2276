"""Linking a Patient to the records of the same person in the other hospital systems.

`evaluate` runs after the Patient's write commits (the matching task): it scores the
candidates the blocking keys find in the other systems and decides each pair:

- `certain` links automatically, unless the link would give either record a second link
  into the same other system: then the pairs involved go to review (a wrong automatic
  link shows one patient's record to another's doctor; DOMAIN.md "People");
- `probable` waits in the review queue, `possible` is kept for `$match` only;
- a steward's decision stands for the versions it was made on: a rejected pair is never
  proposed again until one of the records changes, and then only to review.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import String, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from exchange.matching import features as feature_module
from exchange.matching import links, versions
from exchange.matching.features import Features
from exchange.matching.links import Side
from exchange.matching.model import Model
from exchange.matching.models import (
    LINKED,
    MATCHER,
    POSSIBLE,
    REVIEW,
    UNLINKED,
    BlockKey,
    MatchLink,
    MatchLinkHistory,
    MatchRecord,
)
from exchange.matching.score import Score, score
from puente.fhir.sql import among_in

# Candidates scored per record, those sharing the most blocking keys first: a key shared by
# thousands (a clinic's switchboard phone) must not make one write score thousands of pairs.
CANDIDATE_LIMIT = 200
KEYS_PER_QUERY = 2000  # blocking keys looked up per statement
CERTAIN, PROBABLE, POSSIBLE_GRADE = "certain", "probable", "possible"
RESCORE = "rescore"  # the history reason of a pair scored again by a newly activated model


@dataclass
class Proposal:
    other: MatchRecord
    score: Score
    link: MatchLink | None
    status: str | None  # None: leave the pair as it is
    decided_by: str = MATCHER
    reason: str = "scored"


def candidate_pks(session: Session, pks: list[int]) -> dict[int, list[int]]:
    """For each record of `pks`, the records of other systems sharing a blocking key with
    it, those sharing the most first.

    Two index lookups for the whole batch (its records' keys, then who else holds them),
    joined here: as one self-join PostgreSQL planned seq scans of the key table whenever
    its statistics lagged a bulk load (measured: 0.8-2.2 s a batch of 200 at 100,000
    Patients a side, against milliseconds for the lookups). The second asks, per owner of
    the batch's records, only for the other systems' holders (`owner <>`, answered from
    the lookup index): the records' own system's, as many again or more, never leave the
    database."""
    mine: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    statement = select(BlockKey.resource_pk, BlockKey.owner, BlockKey.key).where(
        among_in(session, BlockKey.resource_pk, pks)
    )
    for pk, owner, key in session.execute(statement).all():
        mine[owner][key].append(pk)
    if not mine:
        return {}
    shared: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for my_owner, by_key in mine.items():
        keys = sorted(by_key)
        for start in range(0, len(keys), KEYS_PER_QUERY):
            holders = select(BlockKey.key, BlockKey.resource_pk).where(
                among_in(session, BlockKey.key, keys[start : start + KEYS_PER_QUERY], String),
                BlockKey.owner != my_owner,
            )
            for key, other in session.execute(holders).all():
                for pk in by_key[key]:
                    shared[pk][other] += 1
    return {
        pk: sorted(counts, key=lambda other: (-counts[other], other))[:CANDIDATE_LIMIT]
        for pk, counts in shared.items()
    }


def _automatic(grade: str) -> str | None:
    return {CERTAIN: LINKED, PROBABLE: REVIEW, POSSIBLE_GRADE: POSSIBLE}.get(grade)


def _same_versions(link: MatchLink, me: Side, you: Side) -> bool:
    left, right = links.ordered(me, you)
    return (link.left_version, link.right_version) == (left.version, right.version)


def _rescored(
    me: Side, other: MatchRecord, found: Score, link: MatchLink | None, model_version: str
) -> Proposal | None:
    """A pair under a newly activated model, where that differs from a write's evaluation:
    stewards' decisions stand, a pair already scored by this model on these versions (from
    its other side, or by an earlier run) stays as it is, and an automatic link the model
    no longer finds certain goes to a steward, never unlinked unseen."""
    if link is None:
        return None
    you = Side(other.resource_pk, other.owner, other.version)
    if link.decided_by != MATCHER or (
        link.model_version == model_version and _same_versions(link, me, you)
    ):
        return Proposal(other, found, link, None)
    if link.status == LINKED and found.grade != CERTAIN:
        return Proposal(other, found, link, REVIEW, MATCHER, RESCORE)
    return None


def _propose(
    me: Side,
    other: MatchRecord,
    found: Score,
    link: MatchLink | None,
    rescoring: str | None = None,
) -> Proposal:
    """What to do with a pair; `rescoring`: the model version being activated, if any."""
    if rescoring is not None:
        special = _rescored(me, other, found, link, rescoring)
        if special is not None:
            return special
    proposal = _scored(me, other, found, link)
    if rescoring is not None and proposal.reason == "scored":
        proposal.reason = RESCORE
    return proposal


def _scored(me: Side, other: MatchRecord, found: Score, link: MatchLink | None) -> Proposal:
    you = Side(other.resource_pk, other.owner, other.version)
    wanted = _automatic(found.grade)
    if link is None:
        return Proposal(other, found, None, wanted)
    if link.decided_by != MATCHER:
        if _same_versions(link, me, you):
            return Proposal(other, found, link, None)  # a person decided on these versions
        if link.status == LINKED:
            return Proposal(other, found, link, LINKED, link.decided_by, "rescored")
        # Rejected or unlinked by a steward: a changed record may be asked about again,
        # never linked without a person.
        if wanted in (LINKED, REVIEW):
            return Proposal(other, found, link, REVIEW, MATCHER, "changed")
        return Proposal(other, found, link, wanted if wanted else None, MATCHER, "changed")
    if wanted is None:  # certainly not (any more) the same person
        return Proposal(other, found, link, None if link.status == UNLINKED else UNLINKED)
    return Proposal(other, found, link, wanted)


def _linked_elsewhere(batch: _Batch, pk: int, system: str, besides: int) -> list[MatchLink]:
    """`pk`'s links into `system` other than the one with `besides` (the batch read every
    link of its records and the `linked` ones of their candidates, and keeps up with what
    it writes)."""
    return [
        link
        for other, link in sorted(batch.links[pk].items())
        if link.status == LINKED and links.other_owner(link, pk) == system and other != besides
    ]


def _resolve_conflicts(
    batch: _Batch, me: Side, proposals: list[Proposal], writes: links.Writes
) -> None:
    """No record gets two links into one other system by the matcher: the pairs go to review."""
    by_system: dict[str, list[Proposal]] = defaultdict(list)
    for proposal in proposals:
        if proposal.status == LINKED or (proposal.status is None and _kept_linked(proposal)):
            by_system[proposal.other.owner].append(proposal)
    for group in by_system.values():
        automatic = [p for p in group if p.decided_by == MATCHER and p.status == LINKED]
        if len(group) > 1:
            for proposal in automatic:
                proposal.status, proposal.reason = REVIEW, "conflict"
            continue
        for proposal in automatic:
            theirs = _linked_elsewhere(batch, proposal.other.resource_pk, me.owner, me.pk)
            if not theirs:
                continue
            proposal.status, proposal.reason = REVIEW, "conflict"
            for link in theirs:
                if link.decided_by == MATCHER:
                    links.decide(
                        writes.session,
                        link,
                        status=REVIEW,
                        decided_by=MATCHER,
                        reason="conflict",
                        writes=writes,
                    )


def _kept_linked(proposal: Proposal) -> bool:
    return proposal.link is not None and proposal.link.status == LINKED


@dataclass
class _Batch:
    """What the evaluation of a batch of records reads once: the records, their candidates
    and links; each record's features are parsed once, when it is first scored."""

    records: dict[int, MatchRecord]
    candidates: dict[int, list[int]]
    links: dict[int, dict[int, MatchLink]]  # record -> other record -> link
    parsed: dict[int, Features] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, pks: list[int]) -> _Batch:
        """Only the records that have something to be scored against are read: a record
        with no candidate and no link is left as it is. Measured on a hospital's first
        bulk import, 19,200 Patients with none: evaluating them took 0.9-1.05 s of CPU,
        against 1.4-1.85 s when every record was read (and 4,905 links came out of the
        second hospital's import either way)."""
        candidates = candidate_pks(session, pks) if pks else {}
        by_record: dict[int, dict[int, MatchLink]] = defaultdict(dict)
        if pks:
            statement = select(MatchLink).where(
                or_(
                    among_in(session, MatchLink.left_pk, pks),
                    among_in(session, MatchLink.right_pk, pks),
                )
            )
            for link in session.scalars(statement):
                by_record[link.left_pk][link.right_pk] = link
                by_record[link.right_pk][link.left_pk] = link
        scored = [pk for pk in pks if candidates.get(pk) or by_record.get(pk)]
        wanted = {o for pk in scored for o in (*candidates.get(pk, ()), *by_record[pk])}
        for link in _linked_of(session, sorted(wanted - set(pks))):
            by_record[link.left_pk].setdefault(link.right_pk, link)
            by_record[link.right_pk].setdefault(link.left_pk, link)
        records = _records(session, sorted(wanted.union(scored)))
        return cls(records, candidates, by_record)

    def features(self, pk: int) -> Features:
        """A record's features, parsed the first time it is scored: most records of a
        batch may have no other system's record to meet (measured: parsing every record's
        features was 4% of a hospital's first bulk import, which scored none)."""
        found = self.parsed.get(pk)
        if found is None:
            found = self.parsed[pk] = feature_module.from_json(self.records[pk].features)
        return found

    def remember(self, link: MatchLink) -> None:
        self.links[link.left_pk][link.right_pk] = link
        self.links[link.right_pk][link.left_pk] = link


def _linked_of(session: Session, pks: list[int]) -> list[MatchLink]:
    """The `linked` links of `pks` (the conflict rule asks whether a candidate is already
    linked into a system), KEYS_PER_QUERY records a statement."""
    found: list[MatchLink] = []
    for start in range(0, len(pks), KEYS_PER_QUERY):
        chunk = pks[start : start + KEYS_PER_QUERY]
        statement = select(MatchLink).where(
            MatchLink.status == LINKED,
            or_(
                among_in(session, MatchLink.left_pk, chunk),
                among_in(session, MatchLink.right_pk, chunk),
            ),
        )
        found.extend(session.scalars(statement))
    return found


def _records(session: Session, pks: list[int]) -> dict[int, MatchRecord]:
    if not pks:
        return {}
    statement = select(MatchRecord).where(among_in(session, MatchRecord.resource_pk, pks))
    return {r.resource_pk: r for r in session.scalars(statement)}


def _evaluate(
    writes: links.Writes, batch: _Batch, pk: int, model: Model, *, rescoring: bool = False
) -> None:
    record = batch.records.get(pk)
    if record is None:  # deleted since, or never a Patient
        return
    me = Side(pk, record.owner, record.version)
    existing = batch.links[pk]
    proposals = []
    for other_pk in dict.fromkeys([*batch.candidates.get(pk, ()), *existing]):
        other = batch.records.get(other_pk)
        if other is None or other.owner == record.owner:
            continue
        found = score(batch.features(pk), batch.features(other_pk), model)
        proposals.append(
            _propose(
                me,
                other,
                found,
                existing.get(other_pk),
                model.version if rescoring else None,
            )
        )
    _resolve_conflicts(batch, me, proposals, writes)
    for proposal in proposals:
        if proposal.status is None:
            continue
        link = links.record(
            writes.session,
            a=me,
            b=Side(proposal.other.resource_pk, proposal.other.owner, proposal.other.version),
            score=proposal.score,
            model_version=model.version,
            status=proposal.status,
            decided_by=proposal.decided_by,
            reason=proposal.reason,
            link=proposal.link,
            writes=writes,
        )
        batch.remember(link)


def evaluate(session: Session, *, pk: int) -> None:
    """Score the Patient `pk` against its candidates and decide each pair (idempotent)."""
    _evaluate_batch(session, [pk], versions.active(session), rescoring=False)


def _evaluate_batch(session: Session, pks: list[int], model: Model, *, rescoring: bool) -> None:
    writes = links.Writes(session)
    batch = _Batch.load(session, pks)
    with session.no_autoflush:
        for pk in pks:
            _evaluate(writes, batch, pk, model, rescoring=rescoring)
    writes.send()


def evaluate_many(session: Session, *, pks: list[int], rescoring: bool = False) -> None:
    """`evaluate` each, reading the batch's records, candidates and links at once
    (measured: 11 ms a record one by one, most of it building and sending queries). If
    another worker linked one of the pairs meanwhile, the batch is redone a record at a
    time, each reading that row.

    `rescoring`: the active model was just activated; every automatic, pending and
    candidate pair of these records is scored again by it (`_rescored` says how that
    differs from the evaluation of a write)."""
    model = versions.active(session)
    try:
        with session.begin_nested():
            _evaluate_batch(session, pks, model, rescoring=rescoring)
    except IntegrityError:
        for pk in pks:
            with session.begin_nested():
                _evaluate_batch(session, [pk], model, rescoring=rescoring)


def record_pks(session: Session, *, after: int, limit: int) -> list[int]:
    """The next `limit` matched records' pks after `after`, in order (a rescore's chunks)."""
    statement = (
        select(MatchRecord.resource_pk)
        .where(MatchRecord.resource_pk > after)
        .order_by(MatchRecord.resource_pk)
        .limit(limit)
    )
    return list(session.scalars(statement))


def record_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(MatchRecord)) or 0


def rescore_summary(session: Session, *, version: str) -> dict[str, int]:
    """How many pairs the rescore by `version` put in each status (from the history)."""
    statement = (
        select(MatchLinkHistory.status, func.count())
        .where(MatchLinkHistory.reason == RESCORE, MatchLinkHistory.model_version == version)
        .group_by(MatchLinkHistory.status)
    )
    return {str(status): int(count) for status, count in session.execute(statement).all()}
