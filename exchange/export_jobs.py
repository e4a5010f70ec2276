"""Asynchronous bulk export (`$export`, FHIR Bulk Data Access 2.0): the request side.

Kick-off checks who may export what, resolves the types (and a Group's members) and
stores the job; the task `puente.exchange.export` (`exchange.export_run`) writes its
NDJSON through the disclosure gate, a page per transaction. Here too: the owner's status
and files, cancelling, and purging files once they expire. Plain functions; they flush,
never commit.

Who may export (ARCHITECTURE.md "Roles"; the gate narrows every record further):
- `system`: system, Patient and Group level (its own hospital's records: the gate's answer);
- `clinician`: Patient and Group level (their hospital's records, and the other side's
  the gate lets through); not system level: a whole-store dump is no treatment use;
- `patient`: Patient level only: their own records on both sides (right of access);
- `consent-officer`, `analyst`, `admin`: none (403): their work needs no patient-level
  bulk data, and analysts and admins never see patient-level data.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, undefer

from exchange import service
from exchange.jobs import CANCELLED, COMPLETED, EXPIRED, FAILED, QUEUED
from exchange.matching import links as mpi_links
from exchange.models import ExportChunk, ExportJob
from exchange.resources import STORE_TYPES
from puente.auth import scopes as scope_text
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction, Role
from puente.db import utcnow
from puente.errors import Forbidden, Gone, InvalidRequest, Issue, NotFound
from puente.tasks import enqueue
from translation.i18n import N_

EXPORT_TASK = "puente.exchange.export"
PURGE_TASK = "puente.exchange.export_purge"
SYSTEM, PATIENT, GROUP = "system", "patient", "group"
LEVELS_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.SYSTEM: frozenset({SYSTEM, PATIENT, GROUP}),
    Role.CLINICIAN: frozenset({PATIENT, GROUP}),
    Role.PATIENT: frozenset({PATIENT}),
}
# Bulk Data 2.0 "_outputFormat": NDJSON under its three accepted names.
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
# Kick-off parameters of the specification Puente does not implement: a 400, unless the
# client sends `Prefer: handling=lenient` (then they are ignored, as search does).
UNSUPPORTED = frozenset(
    {"_elements", "_typeFilter", "patient", "includeAssociatedData", "organizeOutputBy"}
)
# The stored types in the R4 Patient compartment (compartmentdefinition-patient), what
# Patient- and Group-level exports hold. Group is left out: a hospital's list of patients
# is its own working data, not part of a patient's record.
PATIENT_COMPARTMENT = (
    "Patient",
    "AllergyIntolerance",
    "Condition",
    "Consent",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Immunization",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
    "Provenance",
)
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_FILE_NAME = re.compile(r"^([A-Z][A-Za-z]{1,63})-([1-9][0-9]{0,5})\.ndjson$")


@dataclass(frozen=True)
class ExportRequest:
    types: tuple[str, ...] = ()  # empty: every type the level and the caller allow
    since: dt.datetime | None = None
    used: list[tuple[str, str]] = field(default_factory=list)  # for the manifest's request


def _not_supported(name: str) -> InvalidRequest:
    return InvalidRequest(
        issues=[
            Issue(N_("error.export_param_unsupported"), {"name": name[:64]}, code="not-supported")
        ]
    )


def parse_request(items: Iterable[tuple[str, str]], *, lenient: bool) -> ExportRequest:
    """The kick-off's parameters (query string, or a Parameters body made into pairs)."""
    types: list[str] = []
    since: dt.datetime | None = None
    used: list[tuple[str, str]] = []
    for name, raw in items:
        value = raw.strip()
        if name == "_outputFormat":
            if value.lower() not in OUTPUT_FORMATS:
                raise InvalidRequest(N_("error.export_format_unsupported"), format=value[:60])
            used.append((name, value))
        elif name == "_type":
            for part in (p.strip() for p in value.split(",")):
                if part not in STORE_TYPES:
                    raise InvalidRequest(N_("error.export_type_unknown"), type=part[:64])
                types.append(part)
            used.append((name, value))
        elif name == "_since":
            if not _INSTANT.match(value):
                raise InvalidRequest(N_("error.export_since_invalid"))
            since = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
            used.append((name, value))
        elif name == "_pretty":
            continue
        elif not lenient:
            raise _not_supported(name)
    return ExportRequest(tuple(dict.fromkeys(types)), since, used)


def parameters_items(body: Any) -> list[tuple[str, str]]:
    """A POST kick-off's Parameters resource as (name, value) pairs: `valueString`,
    `valueInstant`, `valueCode`, or a `valueReference`'s reference."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest(N_("error.export_parameters_expected"))
    items: list[tuple[str, str]] = []
    for parameter in body.get("parameter") or []:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise InvalidRequest(N_("error.export_parameters_expected"))
        value: Any = next(
            (parameter[k] for k in ("valueString", "valueInstant", "valueCode") if k in parameter),
            (parameter.get("valueReference") or {}).get("reference", ""),
        )
        items.append((parameter["name"], str(value)))
    return items


def authorize(caller: Caller, level: str) -> None:
    """403 unless the caller's role exports at this level (the module's docstring)."""
    if level not in LEVELS_BY_ROLE.get(caller.role, frozenset()):
        raise Forbidden(N_("error.export_role_forbidden"), level=level)


def _types(caller: Caller, level: str, requested: Sequence[str]) -> list[str]:
    allowed = sorted(STORE_TYPES) if level == SYSTEM else list(PATIENT_COMPARTMENT)
    if requested:
        for resource_type in requested:
            if resource_type not in allowed:
                raise InvalidRequest(
                    N_("error.export_type_not_at_level"), type=resource_type, level=level
                )
            caller.require(resource_type, Interaction.READ)
        return list(requested)
    readable = [t for t in allowed if caller.may(t, Interaction.READ)]
    if not readable:
        caller.require("*", Interaction.READ)
    return readable


def group_patients(session: Session, caller: Caller, *, group_id: str) -> list[str]:
    """The Group's Patient members (not `inactive`), with the records the MPI links to
    theirs: the gate then decides about each record. The Group must be one the caller
    may read (else 404, as if it did not exist)."""
    caller.require("Group", Interaction.READ)
    stored = service.load_visible(session, caller, "Group", group_id)
    if stored.content is None:
        raise Gone(resource_type="Group")
    members = [
        reference.removeprefix("Patient/")
        for member in stored.content.get("member") or []
        if isinstance(member, dict) and not member.get("inactive")
        for reference in [(member.get("entity") or {}).get("reference")]
        if isinstance(reference, str) and reference.startswith("Patient/")
    ]
    people = mpi_links.people(session, members)
    return sorted({record for records in people.values() for record in records})


def kick_off(
    session: Session,
    caller: Caller,
    *,
    level: str,
    request: ExportRequest,
    request_url: str,
    locale: str,
    group_id: str | None = None,
) -> ExportJob:
    """Store the job and ask for the task once the request commits."""
    authorize(caller, level)
    types = _types(caller, level, request.types)
    patients = group_patients(session, caller, group_id=group_id or "") if level == GROUP else None
    now = utcnow()
    job = ExportJob(
        id=str(uuid.uuid4()),
        subject=caller.subject,
        role=caller.role.value,
        org_code=caller.org_code,
        country=caller.country,
        fhir_user=caller.fhir_user,
        purpose_of_use=caller.purpose_of_use,
        scopes=scope_text.render(caller.scopes),
        locale=locale,
        level=level,
        group_id=group_id,
        patients=patients,
        request_url=request_url[:2000],
        types=",".join(types),
        since=request.since,
        status=QUEUED,
        created_at=now,
        updated_at=now,
        transaction_time=now,
        type_index=0,
        after_pk=0,
        file_no=1,
        file_count=0,
        resources_done=0,
    )
    session.add(job)
    session.flush()
    enqueue(session, EXPORT_TASK, job.id)
    return job


def caller_of(job: ExportJob) -> Caller:
    """The kick-off's caller, rebuilt from the claims the job kept."""
    return Caller(
        subject=job.subject,
        role=Role(job.role),
        org_code=job.org_code,
        country=job.country,
        scopes=scope_text.parse_many(job.scopes),
        purpose_of_use=job.purpose_of_use,
        fhir_user=job.fhir_user,
        locale=job.locale,
    )


def _owns(job: ExportJob, caller: Caller) -> bool:
    return (job.subject, job.role, job.org_code, job.fhir_user) == (
        caller.subject,
        caller.role.value,
        caller.org_code,
        caller.fhir_user,
    )


def find(session: Session, caller: Caller, *, job_id: str) -> ExportJob:
    """The caller's own job. Anyone else's, or a cancelled one, is not found (404); one
    past its `expires_at` is gone (410) from that instant, whether or not the beat task
    has purged its files yet."""
    job = session.get(ExportJob, job_id[:36])
    if job is None or not _owns(job, caller) or job.status == CANCELLED:
        raise NotFound(N_("error.export_job_not_found"))
    expired = job.expires_at is not None and job.expires_at <= utcnow()
    if job.status == EXPIRED or expired:
        raise Gone(N_("error.export_expired"))
    return job


def locked(session: Session, job_id: str) -> ExportJob | None:
    """The job row, locked for this transaction (an UPDATE before anything is read), so
    that a cancel and a page being written take turns."""
    session.execute(update(ExportJob).where(ExportJob.id == job_id).values(updated_at=utcnow()))
    return session.get(ExportJob, job_id, populate_existing=True)


def cancel(session: Session, caller: Caller, *, job_id: str) -> None:
    """Stop the job before its next page and delete its files; its status is 404 after."""
    find(session, caller, job_id=job_id)
    job = locked(session, job_id[:36])
    assert job is not None
    job.status = CANCELLED
    job.finished_at = job.finished_at or utcnow()
    job.patients = None
    session.execute(delete(ExportChunk).where(ExportChunk.job_id == job.id))
    session.flush()


def _purge(session: Session, job: ExportJob) -> None:
    session.execute(delete(ExportChunk).where(ExportChunk.job_id == job.id))
    job.status = EXPIRED
    job.patients = None
    session.flush()


def purge_expired(session: Session, *, now: dt.datetime | None = None) -> int:
    """Delete the files of every export past its `expires_at`; how many jobs expired."""
    moment = now or utcnow()
    jobs = session.scalars(
        select(ExportJob).where(
            ExportJob.status.in_((COMPLETED, FAILED)), ExportJob.expires_at <= moment
        )
    ).all()
    for job in jobs:
        _purge(session, job)
    return len(jobs)


# --- what the status and the files say -------------------------------------------------


@dataclass(frozen=True)
class OutputFile:
    res_type: str
    file_no: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.res_type}-{self.file_no}.ndjson"


def output_files(session: Session, job: ExportJob) -> list[OutputFile]:
    """The job's files: per type in the order exported, then by number."""
    rows = session.execute(
        select(ExportChunk.res_type, ExportChunk.file_no, func.sum(ExportChunk.count))
        .where(ExportChunk.job_id == job.id)
        .group_by(ExportChunk.res_type, ExportChunk.file_no)
    ).all()
    order = {t: i for i, t in enumerate(job.types.split(","))}
    files = [OutputFile(t, int(n), int(c)) for t, n, c in rows]
    return sorted(files, key=lambda f: (order.get(f.res_type, len(order)), f.file_no))


def files_of(session: Session, *, job_id: str) -> list[OutputFile]:
    """The files of a completed export (none while it runs): for operators and the demo."""
    job = session.get(ExportJob, job_id)
    return output_files(session, job) if job is not None and job.status == COMPLETED else []


@dataclass(frozen=True)
class FileParts:
    """A file's chunk ids in order, and what its download's audit row names."""

    chunk_ids: list[int]
    count: int
    entities: list[str]
    patients: list[str]


def file_parts(session: Session, caller: Caller, *, job_id: str, name: str) -> FileParts:
    """The parts of one of the caller's completed export's files; else 404."""
    job = find(session, caller, job_id=job_id)
    match = _FILE_NAME.match(name)
    if job.status != COMPLETED or match is None:
        raise NotFound(N_("error.export_file_not_found"))
    chunks = session.scalars(
        select(ExportChunk)
        .options(undefer(ExportChunk.entity_refs), undefer(ExportChunk.patient_refs))
        .where(
            ExportChunk.job_id == job.id,
            ExportChunk.res_type == match.group(1),
            ExportChunk.file_no == int(match.group(2)),
        )
        .order_by(ExportChunk.chunk_no)
    ).all()
    if not chunks:
        raise NotFound(N_("error.export_file_not_found"))
    return FileParts(
        [c.id for c in chunks],
        sum(c.count for c in chunks),
        [ref for c in chunks for ref in c.entity_refs],
        list(dict.fromkeys(ref for c in chunks for ref in c.patient_refs)),
    )


def chunk_content(session: Session, chunk_id: int) -> str | None:
    """One part of a file (None once cancelled or purged)."""
    return session.scalar(select(ExportChunk.content).where(ExportChunk.id == chunk_id))
