"""Security labels kept beside the stored resource, and the Part 2 programs they follow.

Labels are not part of a resource's content: `meta.security` on output is the sender's own
codings plus the rows here (ARCHITECTURE.md), so relabelling never writes a version.

Part 2 programs are a table of references per hospital system, not an extension on the
Organization: the Organization resource is the sender's content (a flag written into it
would be a new version, and would be lost the next time the sender sends it), and one
hospital system may run a Part 2 program as one HealthcareService of a larger Organization.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from puente.db import Base, BigId, UTCDateTime


class ResourceLabel(Base):
    """One security label of a stored resource's current version."""

    __tablename__ = "resource_label"

    # References resource.pk (checked by the database: see exchange.models.RESOURCE_REFERENCES).
    resource_pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    system: Mapped[str] = mapped_column(String(255), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(8))  # "sender" or "puente" (computed)


class LabelState(Base):
    """Which lists version labelled a resource, so a change of the lists finds the stale
    ones, including those that had no label and may now have one."""

    __tablename__ = "resource_label_state"
    __table_args__ = (Index("ix_resource_label_state_version", "lists_version"),)

    # References resource.pk (checked by the database: see exchange.models.RESOURCE_REFERENCES).
    resource_pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    lists_version: Mapped[str] = mapped_column(String(32))
    part2: Mapped[bool] = mapped_column(default=False)


class Part2Program(Base):
    """An Organization or HealthcareService of a hospital system that is a 42 CFR Part 2
    program: what that system sends from it carries `42CFRPart2` and `NORDSCLCD`."""

    __tablename__ = "part2_program"

    owner: Mapped[str] = mapped_column(String(32), primary_key=True)  # hospital system code
    reference: Mapped[str] = mapped_column(String(200), primary_key=True)  # Organization/x
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


# Review states of a break-the-glass grant (consent officers close them).
OPEN = "open"
CLOSED = "closed"


def _grant_id() -> str:
    return str(uuid.uuid4())


class BreakGlassGrant(Base):
    """A clinician's break-the-glass: emergency access to one Patient (and the records the
    MPI links to it) until `expires_at`, with the reason written at the time. Kept after it
    expires, for the consent officers' review and the accounting of disclosures."""

    __tablename__ = "break_glass_grant"
    __table_args__ = (
        # consent.breakglass.active_grants: one clinician's grants not yet expired.
        Index("ix_break_glass_grant_active", "clinician", "expires_at"),
        # The review queue: open first, newest first.
        Index("ix_break_glass_grant_review", "status", "granted_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_grant_id)
    clinician: Mapped[str] = mapped_column(String(255))  # the token's subject
    clinician_fhir_user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    org_code: Mapped[str] = mapped_column(String(32))  # the clinician's hospital system
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    patient_id: Mapped[str] = mapped_column(String(64))  # the Patient the grant was made for
    reason: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(16))  # ETREAT
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(8), default=OPEN)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class BreakGlassComment(Base):
    """A consent officer's note on a grant under review."""

    __tablename__ = "break_glass_comment"
    __table_args__ = (Index("ix_break_glass_comment_grant", "grant_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    grant_id: Mapped[str] = mapped_column(String(36), ForeignKey("break_glass_grant.id"))
    author: Mapped[str] = mapped_column(String(255))  # role:subject, as the MPI's stewards
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
