"""What `puente matcher train` learns from: the stored Patients and the stewards' decisions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from exchange.matching import features as feature_module
from exchange.matching.features import Features
from exchange.matching.models import LINKED, MATCHER, REJECTED, UNLINKED, MatchLink, MatchRecord

# Rows read per round trip: the features of 200,000 Patients stream, never load at once.
CHUNK = 5000


def patients(session: Session) -> list[Features]:
    """Every indexed Patient's features (u probabilities are sampled from their pairs)."""
    statement = select(MatchRecord.features).order_by(MatchRecord.resource_pk)
    return [
        feature_module.from_json(found)
        for found in session.scalars(statement.execution_options(yield_per=CHUNK))
    ]


def decisions(session: Session) -> list[tuple[Features, Features, bool]]:
    """Pairs a steward decided: linked (same person) or rejected/unlinked (two people)."""
    left, right = aliased(MatchRecord), aliased(MatchRecord)
    statement = (
        select(left.features, right.features, MatchLink.status)
        .join(left, left.resource_pk == MatchLink.left_pk)
        .join(right, right.resource_pk == MatchLink.right_pk)
        .where(
            MatchLink.decided_by != MATCHER,
            MatchLink.status.in_((LINKED, REJECTED, UNLINKED)),
        )
        .order_by(MatchLink.id)
    )
    return [
        (feature_module.from_json(a), feature_module.from_json(b), status == LINKED)
        for a, b, status in session.execute(statement)
    ]
