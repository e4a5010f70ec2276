"""The master patient index's tables: features and blocking keys of every stored Patient,
the links between records of one person (with their history), and the scoring models.

Links live here, never inside the hospitals' resources (ARCHITECTURE.md, "Identity"):
writing them there would bump versions and break senders' `If-Match`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db import Base, BigId, JSONDocument, UTCDateTime

# Link statuses. `linked`: the same person (the matcher was certain, or a steward said so);
# `review`: waiting for a steward; `possible`: too weak to ask anyone, kept for `$match`;
# `rejected`: a steward said they are two people; `unlinked`: a link that was undone.
LINKED, REVIEW, POSSIBLE, REJECTED, UNLINKED = (
    "linked",
    "review",
    "possible",
    "rejected",
    "unlinked",
)
STATUSES = (LINKED, REVIEW, POSSIBLE, REJECTED, UNLINKED)
MATCHER = "matcher"  # `decided_by` of what the matcher decided on its own


class MatchRecord(Base):
    """A stored Patient as the matcher sees it: `features.to_json` of its current version."""

    __tablename__ = "mpi_record"

    resource_pk: Mapped[int] = mapped_column(
        ForeignKey("resource.pk", ondelete="CASCADE"), primary_key=True
    )
    res_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(32))  # the hospital system
    version: Mapped[int] = mapped_column(Integer)  # the resource version the features are of
    features: Mapped[dict[str, Any]] = mapped_column(JSONDocument)


class BlockKey(Base):
    """One blocking key of a Patient (`bd:1985-04-12`): candidates are an index query."""

    __tablename__ = "mpi_block_key"
    __table_args__ = (
        # Covers the candidate lookup (key IN (...) AND owner <> ...) without a table visit.
        Index("ix_mpi_block_key_lookup", "key", "owner", "resource_pk"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # References mpi_record.resource_pk, checked and cascaded by the database through
    # triggers, as a foreign key would (migration 0012: a bulk import COPYs about eight
    # keys a Patient, and the foreign key's check was a query per key).
    resource_pk: Mapped[int] = mapped_column(BigId, index=True)
    owner: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(96))


class MatchLink(Base):
    """A scored pair of Patients of two hospital systems; `left_pk < right_pk`."""

    __tablename__ = "mpi_link"
    __table_args__ = (
        UniqueConstraint("left_pk", "right_pk", name="uq_mpi_link_pair"),
        Index("ix_mpi_link_right", "right_pk"),
        Index("ix_mpi_link_review_left", "left_owner", "status", "score"),
        Index("ix_mpi_link_review_right", "right_owner", "status", "score"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    left_pk: Mapped[int] = mapped_column(ForeignKey("resource.pk", ondelete="CASCADE"))
    right_pk: Mapped[int] = mapped_column(ForeignKey("resource.pk", ondelete="CASCADE"))
    left_owner: Mapped[str] = mapped_column(String(32))
    right_owner: Mapped[str] = mapped_column(String(32))
    left_version: Mapped[int] = mapped_column(Integer)  # the versions that were scored
    right_version: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)  # match probability 0-1
    weight: Mapped[float] = mapped_column(Float)  # log2 Bayes factor
    grade: Mapped[str] = mapped_column(String(16))  # certain probable possible certainly-not
    model_version: Mapped[str] = mapped_column(String(64))
    # [{"field", "level", "weight"}] and the contradicting fields, as scored
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str] = mapped_column(String(255))  # MATCHER or the steward's subject
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MatchLinkHistory(Base):
    """Every state a link went through, and who or what put it there."""

    __tablename__ = "mpi_link_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("mpi_link.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))
    left_version: Mapped[int] = mapped_column(Integer)
    right_version: Mapped[int] = mapped_column(Integer)
    decided_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32))  # scored, conflict, accept, reject, ...
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MatchModel(Base):
    """A scoring model (`Model.to_json()`); exactly one is active once any is stored."""

    __tablename__ = "mpi_model"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
