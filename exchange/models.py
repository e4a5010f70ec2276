"""The resource store, laid out like HAPI's: current resources, past versions, and search
index tables filled at write time so that a search never scans JSON.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from puente.db import Base, BigId, JSONDocument, UTCDateTime
from puente.fhir.search import ParamType

# The tables whose `resource_pk` references resource.pk. The database refuses a row naming
# no resource and deletes a resource's rows with it, as `ForeignKey(ondelete="CASCADE")`
# would, through triggers (migrations 0007 and 0008): on PostgreSQL one set-based check per
# statement rather than a foreign key's query per row, which was half of the database's
# work in a bulk import (measured: 100,000 resources write about 960,000 such rows).
RESOURCE_REFERENCES = (
    "resource_version",
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_reference",
    "idx_quantity",
    "resource_label",  # consent.models, migration 0008: a state row for every resource
    "resource_label_state",
)
PUENTE_OWNER = "puente"  # the pseudo-system that owns what people and operators write


class StoredResource(Base):
    __tablename__ = "resource"
    __table_args__ = (
        UniqueConstraint("res_type", "res_id", name="uq_resource_type_id"),
        Index("ix_resource_type_updated", "res_type", "last_updated"),
        Index("ix_resource_owner_type", "owner", "res_type"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    res_type: Mapped[str] = mapped_column(String(64))
    res_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(32))  # hospital system code or "puente"
    owner_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    last_updated: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    content: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)


class ResourceVersion(Base):
    __tablename__ = "resource_version"
    __table_args__ = (Index("ix_resource_version_updated", "last_updated"),)

    # References resource.pk (checked by the database: see RESOURCE_REFERENCES).
    resource_pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    res_type: Mapped[str] = mapped_column(String(64))
    res_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(32))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    method: Mapped[str] = mapped_column(String(8))  # POST PUT PATCH DELETE
    last_updated: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    content: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)


class StringIndex(Base):
    """`value` is accent- and case-folded for the default and :contains searches."""

    __tablename__ = "idx_string"
    __table_args__ = (
        # PostgreSQL uses a btree for `LIKE 'prefix%'` only under the C collation or with
        # the pattern operator class; the default search is a prefix match (R4 3.1.1.5.4).
        Index(
            "ix_idx_string_lookup",
            "res_type",
            "param",
            "value",
            postgresql_ops={"value": "varchar_pattern_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_pk: Mapped[int] = mapped_column(BigId, index=True)  # see RESOURCE_REFERENCES
    res_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(255))
    exact: Mapped[str] = mapped_column(String(255))


class TokenIndex(Base):
    __tablename__ = "idx_token"
    # One lookup index, the code before the system: `code`, `|code` and `system|code`
    # use it whole or by its leading columns (migration 0014).
    __table_args__ = (Index("ix_idx_token_lookup", "res_type", "param", "code", "system"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_pk: Mapped[int] = mapped_column(BigId, index=True)  # see RESOURCE_REFERENCES
    res_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(64))
    system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code: Mapped[str] = mapped_column(String(255))


class DateIndex(Base):
    """A date as the range it covers: `2024` is [2024-01-01T00:00, 2025-01-01T00:00)."""

    __tablename__ = "idx_date"
    __table_args__ = (Index("ix_idx_date_lookup", "res_type", "param", "low", "high"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_pk: Mapped[int] = mapped_column(BigId, index=True)  # see RESOURCE_REFERENCES
    res_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(64))
    low: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    high: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ReferenceIndex(Base):
    __tablename__ = "idx_reference"
    __table_args__ = (
        Index("ix_idx_reference_target", "res_type", "param", "target_type", "target_id"),
        Index("ix_idx_reference_reverse", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_pk: Mapped[int] = mapped_column(BigId, index=True)  # see RESOURCE_REFERENCES
    res_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target_id: Mapped[str] = mapped_column(String(255))


class QuantityIndex(Base):
    __tablename__ = "idx_quantity"
    __table_args__ = (Index("ix_idx_quantity_lookup", "res_type", "param", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_pk: Mapped[int] = mapped_column(BigId, index=True)  # see RESOURCE_REFERENCES
    res_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(64))
    value: Mapped[Decimal] = mapped_column(Numeric(24, 8))
    system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)


# The index table each type of search parameter's rows go to (written by `store`, read
# by `query`).
INDEX_TABLE_OF_TYPE: dict[ParamType, Any] = {
    ParamType.STRING: StringIndex,
    ParamType.TOKEN: TokenIndex,
    ParamType.URI: TokenIndex,
    ParamType.DATE: DateIndex,
    ParamType.REFERENCE: ReferenceIndex,
    ParamType.QUANTITY: QuantityIndex,
    ParamType.NUMBER: QuantityIndex,
}


class ImportJob(Base):
    """An asynchronous `$import`: the NDJSON as received, and how far its writing got.

    Progress is recorded in the transaction that writes each batch, so a worker that dies
    resumes after the last committed batch. The payload is dropped once the job completes
    or is cancelled; a failed job keeps it until it is resumed (`import_jobs.resume`)."""

    __tablename__ = "import_job"
    __table_args__ = (Index("ix_import_job_owner_created", "owner", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(32))  # the hospital system that posted it
    scopes: Mapped[str] = mapped_column(String(2000))  # the kick-off token's, rendered
    status: Mapped[str] = mapped_column(String(16))  # queued running completed failed cancelled
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    payload_bytes: Mapped[int] = mapped_column(BigId)
    lines_total: Mapped[int] = mapped_column(Integer, default=0)
    lines_done: Mapped[int] = mapped_column(Integer, default=0)
    read_count: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)


class ImportJobError(Base):
    """One rejected line of an import: its number and the issues, never its content."""

    __tablename__ = "import_job_error"
    __table_args__ = (UniqueConstraint("job_id", "line", name="uq_import_job_error_line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("import_job.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    issues: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)


class ExportJob(Base):
    """An asynchronous `$export` (FHIR Bulk Data): who asked, what for, how far it got.

    The caller's claims are kept so that the task, which has no request, asks the
    disclosure gate as that caller. Each page of resources commits with the job's cursor
    (`type_index`, `after_pk`), so a worker that dies resumes after the last committed
    page. Its files (`ExportChunk`) are purged at `expires_at`."""

    __tablename__ = "export_job"
    __table_args__ = (
        Index("ix_export_job_subject_created", "subject", "created_at"),
        Index("ix_export_job_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The kick-off token's claims: enough to rebuild its `Caller`.
    subject: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(32))
    org_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    fhir_user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    purpose_of_use: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(2000))
    locale: Mapped[str] = mapped_column(String(8))
    # What was asked: system | patient | group; the Group's id; the kick-off URL.
    level: Mapped[str] = mapped_column(String(8))
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Group level: the members' Patient ids, closed over the MPI's links at kick-off.
    patients: Mapped[list[str] | None] = mapped_column(JSONDocument, nullable=True)
    request_url: Mapped[str] = mapped_column(String(2000))
    types: Mapped[str] = mapped_column(String(2000))  # comma list, in the order exported
    since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # exchange.jobs
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Resources changed after this instant are left out (Bulk Data: transactionTime).
    transaction_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The cursor: the type being exported, the last pk looked at, its file and fill.
    type_index: Mapped[int] = mapped_column(Integer, default=0)
    after_pk: Mapped[int] = mapped_column(BigId, default=0)
    file_no: Mapped[int] = mapped_column(Integer, default=1)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    resources_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(128), nullable=True)  # a catalog key


class ExportChunk(Base):
    """One page of an export's output: NDJSON lines of one type, a part of file `file_no`
    (a file is its chunks in `chunk_no` order). In the database, so that the worker that
    writes it and the API process that serves it may run on different machines."""

    __tablename__ = "export_chunk"
    __table_args__ = (
        UniqueConstraint(
            "job_id", "res_type", "file_no", "chunk_no", name="uq_export_chunk_position"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("export_job.id", ondelete="CASCADE"))
    res_type: Mapped[str] = mapped_column(String(64))
    file_no: Mapped[int] = mapped_column(Integer)
    chunk_no: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text, deferred=True)
    # `Type/id` of each resource and the Patients they are about: the download's audit row.
    entity_refs: Mapped[list[str]] = mapped_column(JSONDocument, deferred=True)
    patient_refs: Mapped[list[str]] = mapped_column(JSONDocument, deferred=True)
