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

from sqlalchemy import Index, String
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
