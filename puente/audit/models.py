"""Audit tables. Requests only INSERT; the sealer only INSERTs chain rows.

`audit_entry` rows are written unsealed by requests (no lock, no fork). One sealer appends
`audit_chain` rows: each names an entry and carries SHA-256(previous hash + canonical
content of the entry). On PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE of both.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from puente.db import Base, JSONDocument, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    # AuditEvent search: by hospital and date (consent officers), by who acted (`agent`:
    # the client/account id or the person's fhirUser); patients and entities go through
    # audit_reference.
    __table_args__ = (
        Index("ix_audit_entry_org_recorded", "org_code", "recorded_at"),
        Index("ix_audit_entry_agent", "agent"),
        Index("ix_audit_entry_fhir_user", "fhir_user"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # BALP: type (rest | login | logout | security-admin ...) and subtype (read, search...)
    event_type: Mapped[str] = mapped_column(String(32))
    subtype: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(1))  # C R U D E
    outcome: Mapped[int] = mapped_column(SmallInteger)  # 0 success, 4 minor, 8 serious, 12 major
    outcome_detail: Mapped[str | None] = mapped_column(String(128), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(254), nullable=True)
    agent_role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fhir_user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    org_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    purpose_of_use: Mapped[str | None] = mapped_column(String(16), nullable=True)
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Resource references touched ("Organization/hgcj"); patients are listed separately.
    entities: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    patients: Mapped[list[str]] = mapped_column(JSONDocument, default=list)


class AuditReference(Base):
    """Search index for the references of an entry (written with it, never changed)."""

    __tablename__ = "audit_reference"
    __table_args__ = (Index("ix_audit_reference_ref_kind", "reference", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_entry.id"), index=True)
    reference: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(8))  # entity | patient


class AuditChain(Base):
    __tablename__ = "audit_chain"

    position: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_entry.id"), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
