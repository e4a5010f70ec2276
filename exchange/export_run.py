"""Asynchronous bulk export: the task side, a page of resources per transaction.

Each page is read through the disclosure gate as the kick-off's caller
(`gate.clause(type, within=page)`: exactly the rows that caller may see), rendered by
`service.shown` (Patient.link, security labels, disclosure notices; the records another
hospital disclosed are audited there, subtype `export`) and stored as one `ExportChunk`
with the job's cursor, in one transaction: a worker killed mid-export resumes after the
last committed page, and a second run of the task finds the job finished and returns.

Resources changed after the job's transactionTime are left out (Bulk Data 2.0: the
output SHOULD NOT include them); a later export with `_since` = that time has them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, true
from sqlalchemy.orm import Session

from consent import facts as consent_facts
from exchange import service
from exchange.export_jobs import GROUP, SYSTEM, caller_of, locked
from exchange.gate import COMPARTMENT_PARAMS, gate_for
from exchange.jobs import COMPLETED, FAILED, FINISHED, RUNNING
from exchange.models import ExportChunk, ExportJob, ReferenceIndex, StoredResource
from puente.db import utcnow
from puente.settings import get_settings

# Resources read, gated and rendered per transaction: the most a crash makes a worker redo.
PAGE = 500


def begin(session: Session, *, job_id: str) -> bool:
    """Mark the job running; False when there is nothing to do (gone, finished)."""
    job = locked(session, job_id)
    if job is None or job.status in FINISHED:
        return False
    job.status = RUNNING
    session.flush()
    return True


def _in_compartment(resource_type: str, patients: list[str] | None) -> ColumnElement[bool]:
    """Rows in the compartment of a Patient (of one of `patients`, when given): the
    Patient itself, or a record referring to it through a compartment parameter."""
    if resource_type == "Patient":
        return StoredResource.res_id.in_(patients) if patients is not None else true()
    reference = exists().where(
        ReferenceIndex.resource_pk == StoredResource.pk,
        or_(ReferenceIndex.target_type == "Patient", ReferenceIndex.target_type.is_(None)),
        ReferenceIndex.param.in_(COMPARTMENT_PARAMS),
    )
    if patients is not None:
        reference = reference.where(ReferenceIndex.target_id.in_(patients))
    return reference


def _scope(job: ExportJob, resource_type: str) -> ColumnElement[bool]:
    """What the job asks for of one type, before the gate: level, `_since`, as of its
    transactionTime."""
    clauses = [
        StoredResource.res_type == resource_type,
        StoredResource.deleted.is_(False),
        StoredResource.last_updated <= job.transaction_time,
    ]
    if job.since is not None:
        clauses.append(StoredResource.last_updated > job.since)
    if job.level != SYSTEM:
        patients = (job.patients or []) if job.level == GROUP else None
        clauses.append(_in_compartment(resource_type, patients))
    return and_(*clauses)


def _line(content: dict[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def run_page(session: Session, *, job_id: str) -> bool:
    """Export the next page and move the cursor; False once the job is finished (or
    cancelled meanwhile)."""
    job = locked(session, job_id)
    if job is None or job.status != RUNNING:
        return False
    types = [t for t in job.types.split(",") if t]
    if job.type_index >= len(types):
        _complete(session, job)
        return False
    resource_type = types[job.type_index]
    caller = caller_of(job)
    max_file = get_settings().export_file_max_resources
    gate = gate_for(session, caller)
    # The next page of candidates (the gate's superset: no engine asked yet), then the
    # gate exact inside it: the engine is asked only about this page's rows.
    candidates = session.scalars(
        select(StoredResource.pk)
        .where(
            _scope(job, resource_type),
            StoredResource.pk > job.after_pk,
            gate.superset(resource_type),
        )
        .order_by(StoredResource.pk)
        .limit(min(PAGE, max_file - job.file_count))
    ).all()
    if not candidates:
        job.type_index += 1
        job.after_pk, job.file_no, job.file_count = 0, 1, 0
        session.flush()
        return True
    within = StoredResource.pk.in_(candidates)
    rows = list(
        session.scalars(
            select(StoredResource)
            .where(within, gate.clause(resource_type, within=within))
            .order_by(StoredResource.pk)
        )
    )
    # Asked again of the session's gate right before rendering: `shown` names in the
    # disclosure audit exactly the records this gate decided to disclose.
    current = gate_for(session, caller)
    rows = [r for r, ok in zip(rows, current.permits(rows), strict=True) if ok]
    contents = service.shown(session, caller, rows, subtype="export", locale=job.locale)
    if contents:
        _store_chunk(session, job, resource_type, contents)
        job.file_count += len(contents)
        job.resources_done += len(contents)
        if job.file_count >= max_file:
            job.file_no, job.file_count = job.file_no + 1, 0
    job.after_pk = candidates[-1]
    session.flush()
    return True


def _store_chunk(
    session: Session, job: ExportJob, resource_type: str, contents: list[dict[str, Any]]
) -> None:
    chunk_no = session.scalar(
        select(func.coalesce(func.max(ExportChunk.chunk_no), 0)).where(
            ExportChunk.job_id == job.id,
            ExportChunk.res_type == resource_type,
            ExportChunk.file_no == job.file_no,
        )
    )
    patients = (consent_facts.patient_of(c) for c in contents)
    session.add(
        ExportChunk(
            job_id=job.id,
            res_type=resource_type,
            file_no=job.file_no,
            chunk_no=int(chunk_no or 0) + 1,
            count=len(contents),
            content="".join(f"{_line(c)}\n" for c in contents),
            entity_refs=[f"{c['resourceType']}/{c['id']}" for c in contents],
            patient_refs=list(dict.fromkeys(f"Patient/{p}" for p in patients if p)),
        )
    )


def _complete(session: Session, job: ExportJob) -> None:
    now = utcnow()
    job.status = COMPLETED
    job.finished_at = now
    job.expires_at = now + _retention()
    session.flush()


def _retention() -> dt.timedelta:
    return dt.timedelta(seconds=get_settings().export_retention_seconds)


def fail(session: Session, *, job_id: str, error: str) -> None:
    """The job stopped on an error (`error`, a catalog key): its partial files are
    deleted, and its status says it failed until it expires."""
    job = locked(session, job_id)
    if job is None or job.status in FINISHED:
        return
    session.execute(delete(ExportChunk).where(ExportChunk.job_id == job.id))
    now = utcnow()
    job.status = FAILED
    job.error = error
    job.finished_at = now
    job.expires_at = now + _retention()
    job.patients = None
    session.flush()
