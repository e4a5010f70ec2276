"""Asynchronous bulk import (`POST /fhir/$import`): the job, its progress and its errors.

A hospital system posts NDJSON; the job keeps the bytes and is written by the task
`puente.exchange.import` in batches through `bulk.import_lines`, the path `puente import`
takes. Each batch, its progress counters, its rejected lines and its audit row commit in
one transaction, so a worker killed mid-import resumes after the last committed batch and
neither loses nor repeats a line (and the writes are idempotent besides: ids by PUT
semantics, id-less resources matched on identifier). Plain functions; they flush, never
commit: the task and the request own the transactions.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from exchange import bulk, jobs
from exchange.models import ImportJob, ImportJobError
from puente.audit import service as audit
from puente.auth import scopes as scope_text
from puente.auth import service as auth
from puente.auth.caller import Caller
from puente.db import utcnow
from puente.errors import Conflict, Forbidden, InvalidRequest, Issue, NotFound, PuenteError
from puente.tasks import enqueue
from translation.i18n import N_

IMPORT_TASK = "puente.exchange.import"
# Lines written per transaction: the most a crash can make a worker redo.
BATCH = 500
# References named in each batch's audit row; the batch's count says how many there were.
AUDIT_REFERENCES = 50
SOURCE = "$import"


# The job states shared with `$export` (exchange.jobs), under the names callers use here.
QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    jobs.QUEUED,
    jobs.RUNNING,
    jobs.COMPLETED,
    jobs.FAILED,
    jobs.CANCELLED,
)
FINISHED = jobs.FINISHED


class PayloadTooLarge(PuenteError):
    status_code = 413
    issue_code = "too-costly"
    message_key = N_("error.import_too_large")


# --- kick-off and status (the request side) ----------------------------------------------


def authorize(caller: Caller) -> str:
    """The importing system's code: only hospital systems import, with a create scope."""
    if not caller.is_system or not caller.org_code:
        raise Forbidden(N_("error.writes_system_only"))
    if not any("c" in granted.permissions for granted in caller.scopes):
        raise Forbidden(N_("error.scope_missing"), resource_type="*", interaction="create")
    return caller.org_code


def _decoded(payload: bytes) -> str:
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(N_("error.import_not_utf8")) from exc


def source_lines(payload: bytes) -> list[bulk.SourceLine]:
    """The non-blank lines, numbered as in the body (from 1, blank lines counted)."""
    return [
        bulk.SourceLine(SOURCE, number, text)
        for number, text in enumerate(_decoded(payload).splitlines(), start=1)
        if text.strip()
    ]


def kick_off(session: Session, caller: Caller, *, payload: bytes) -> ImportJob:
    """Store the job and ask for the task once the request commits."""
    owner = authorize(caller)
    total = len(source_lines(payload))
    if total == 0:
        raise InvalidRequest(N_("error.import_empty"))
    now = utcnow()
    job = ImportJob(
        id=str(uuid.uuid4()),
        owner=owner,
        scopes=scope_text.render(caller.scopes),
        status=QUEUED,
        created_at=now,
        updated_at=now,
        payload_bytes=len(payload),
        lines_total=total,
        lines_done=0,
        read_count=0,
        created_count=0,
        updated_count=0,
        unchanged_count=0,
        rejected_count=0,
        payload=payload,
    )
    session.add(job)
    session.flush()
    enqueue(session, IMPORT_TASK, job.id)
    return job


def find(session: Session, caller: Caller, *, job_id: str) -> ImportJob:
    """The caller's own job; anyone else's, or a cancelled one, is not found (404)."""
    job = session.get(ImportJob, job_id[:36])
    if (
        job is None
        or not caller.is_system
        or job.owner != caller.org_code
        or job.status == CANCELLED
    ):
        raise NotFound(N_("error.import_job_not_found"))
    return job


def cancel(session: Session, caller: Caller, *, job_id: str) -> ImportJob:
    """Stop a job before its next batch and forget its payload and errors; what was
    already written stays written (a re-post would find it unchanged)."""
    find(session, caller, job_id=job_id)
    # Taking the row as the task does: a batch in flight commits before the cancel lands.
    session.execute(update(ImportJob).where(ImportJob.id == job_id).values(updated_at=utcnow()))
    job = session.get(ImportJob, job_id, populate_existing=True)
    assert job is not None
    job.status = CANCELLED
    job.payload = None
    job.finished_at = job.finished_at or utcnow()
    session.execute(delete(ImportJobError).where(ImportJobError.job_id == job_id))
    session.flush()
    return job


def rejected_lines(session: Session, job: ImportJob) -> list[tuple[int, list[Issue]]]:
    rows = session.scalars(
        select(ImportJobError).where(ImportJobError.job_id == job.id).order_by(ImportJobError.line)
    )
    return [(row.line, [_issue(stored) for stored in row.issues]) for row in rows]


def _issue(stored: dict[str, Any]) -> Issue:
    return Issue(
        stored["key"],
        stored.get("params") or {},
        code=stored.get("code", "invalid"),
        severity=stored.get("severity", "error"),
        expression=tuple(stored.get("expression") or ()),
    )


def _stored_issue(issue: Issue) -> dict[str, Any]:
    # Issue parameters are element paths, ids and codes (puente/errors.py), never values.
    return {
        "key": issue.message_key,
        "params": json.loads(json.dumps(issue.params, default=str)),
        "code": issue.code,
        "severity": issue.severity,
        "expression": list(issue.expression),
    }


# --- the run (the task side) -------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    job_id: str
    caller: Caller
    lines: list[bulk.SourceLine]  # in reference order; a batch is a slice of it
    parsed: list[Any]  # each line's JSON, parsed once (None: not JSON)


def _locked(session: Session, job_id: str) -> ImportJob | None:
    """The job row, locked for this transaction: an UPDATE takes the row lock on
    PostgreSQL and the write lock on SQLite before anything is read, so two runs of one
    job (a redelivery while the first still runs) take batches in turn, never the same."""
    session.execute(update(ImportJob).where(ImportJob.id == job_id).values(updated_at=utcnow()))
    return session.get(ImportJob, job_id, populate_existing=True)


def begin(session: Session, *, job_id: str) -> Run | None:
    """Mark the job running and return what its batches need; None when there is
    nothing to do (gone, finished, cancelled)."""
    job = _locked(session, job_id)
    if job is None or job.status in FINISHED:
        return None
    system = auth.find_system(session, job.owner)
    if system is None:
        _finish(session, job, FAILED)
        return None
    job.status = RUNNING
    payload = session.scalar(select(ImportJob.payload).where(ImportJob.id == job_id))
    caller = auth.system_caller(system, scopes=scope_text.parse_many(job.scopes))
    lines, parsed = bulk.in_reference_order_parsed(source_lines(payload or b""))
    session.flush()
    return Run(job_id, caller, lines, parsed)


def run_batch(
    session: Session, *, run: Run, reparse: bool = False, transient: bool = False
) -> bool:
    """Write the next batch and record it; False once the job is finished (or stopped).

    `reparse`: parse the lines again rather than use the JSON parsed at `begin` (a run
    after one that rolled back). `transient`: write nothing, and record every line of the
    batch as refused for a transient conflict (the batch kept losing to concurrent
    writers however often it was retried)."""
    job = _locked(session, run.job_id)
    if job is None or job.status != RUNNING:
        return False
    batch = run.lines[job.lines_done : job.lines_done + BATCH]
    parsed = run.parsed[job.lines_done : job.lines_done + BATCH]
    if transient:
        report = bulk.transient_report(batch)
    else:
        report = bulk.ImportReport()
        bulk.import_lines(session, run.caller, batch, report, None if reparse else parsed)
    for error in report.errors:
        session.add(
            ImportJobError(
                job_id=job.id, line=error.line, issues=[_stored_issue(i) for i in error.issues]
            )
        )
    job.lines_done += len(batch)
    job.read_count += report.read
    job.created_count += report.created
    job.updated_count += report.updated
    job.unchanged_count += report.unchanged
    job.rejected_count += len(report.errors)
    _audit_batch(session, run.caller, batch, parsed, report)
    if job.lines_done >= len(run.lines):
        _finish(session, job, COMPLETED)
    session.flush()
    return job.status == RUNNING


def fail(session: Session, *, job_id: str) -> None:
    """The job stopped on an error: it keeps its payload and its progress, so that
    `resume` can continue it after the last committed batch (or DELETE forgets it)."""
    job = _locked(session, job_id)
    if job is not None and job.status not in FINISHED:
        _finish(session, job, FAILED, keep_payload=True)


def resume(session: Session, caller: Caller | None, *, job_id: str) -> ImportJob:
    """Queue a job that failed (or whose worker died: still `running`, or `queued`) to go
    on after its last committed batch: the lines written before are not written again.

    `caller` None: an operator (`puente import-jobs resume`), any system's job. A
    completed job, or a failed one that no longer holds its NDJSON, is a 409. Queueing a
    job that is in fact still running is harmless: runs of one job take batches in turn.
    """
    if caller is not None:
        find(session, caller, job_id=job_id)
    job = _locked(session, job_id[:36])
    if job is None or job.status == CANCELLED:
        raise NotFound(N_("error.import_job_not_found"))
    if job.status == COMPLETED:
        raise Conflict(N_("error.import_not_resumable"))
    if not resumable(session, job):
        raise Conflict(N_("error.import_payload_gone"))
    if job.status == FAILED:
        job.status = QUEUED
        job.finished_at = None
    session.flush()
    enqueue(session, IMPORT_TASK, job.id)
    return job


def resumable(session: Session, job: ImportJob) -> bool:
    """Whether the job still holds its NDJSON (a failed job does, until resumed or
    deleted; jobs that failed before resuming existed do not)."""
    held = session.scalar(select(ImportJob.payload.is_not(None)).where(ImportJob.id == job.id))
    return bool(held)


def _finish(session: Session, job: ImportJob, status: str, *, keep_payload: bool = False) -> None:
    job.status = status
    job.finished_at = utcnow()
    if not keep_payload:
        job.payload = None  # the data now lives in the store; keep no second copy of PHI
    session.flush()


def _audit_batch(
    session: Session,
    caller: Caller,
    batch: list[bulk.SourceLine],
    parsed: list[Any],
    report: bulk.ImportReport,
) -> None:
    if report.stored == 0:
        return
    rejected = {error.line for error in report.errors}
    entities: list[str] = []
    patients: list[str] = []
    for line, resource in zip(batch, parsed, strict=True):
        if line.line in rejected or len(entities) >= AUDIT_REFERENCES:
            continue
        reference, patient = _references(resource)
        if reference:
            entities.append(reference)
        if patient and len(patients) < AUDIT_REFERENCES:
            patients.append(patient)
    audit.append(
        session,
        event_type="rest",
        subtype="import",
        action="C",
        caller=caller,
        entities=entities or ["$import"],
        patients=patients,
    )


def _references(resource: Any) -> tuple[str | None, str | None]:
    """`Type/id` of a line's resource (when it carries an id) and of its patient."""
    if not isinstance(resource, dict):
        return None, None
    kind, res_id = resource.get("resourceType"), resource.get("id")
    reference = f"{kind}/{res_id}" if isinstance(kind, str) and isinstance(res_id, str) else None
    if kind == "Patient":
        return reference, reference
    for element in ("subject", "patient"):
        target = resource.get(element)
        if isinstance(target, dict):
            value = target.get("reference")
            if isinstance(value, str) and value.startswith("Patient/"):
                return reference, value
    return reference, None
