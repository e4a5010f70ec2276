"""Appending to the audit trail. Requests insert unsealed rows; see sealer.py for the chain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from puente.audit.models import AuditEntry, AuditReference
from puente.auth.caller import Caller
from puente.db import utcnow
from puente.settings import get_settings
from puente.tasks import PENDING_KEY, enqueue

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12
SEAL_TASK = "puente.audit.seal"


def _seal_after_commit(session: Session) -> None:
    """Embedded mode (no broker): chain the new rows right after this transaction commits.

    Once per transaction: the pending list lives until commit or rollback. With a broker,
    Celery beat seals every second instead, and requests send nothing.
    """
    if get_settings().broker_url is not None:
        return
    if (SEAL_TASK, ()) not in session.info.get(PENDING_KEY, []):
        enqueue(session, SEAL_TASK)


def append(
    session: Session,
    *,
    event_type: str,
    subtype: str,
    action: str,
    outcome: int = SUCCESS,
    caller: Caller | None = None,
    agent: str | None = None,
    request_id: str | None = None,
    source_ip: str | None = None,
    entities: Sequence[str] = (),
    patients: Sequence[str] = (),
    outcome_detail: str | None = None,
) -> AuditEntry:
    """Add one audit row (and its reference index) to the session; the shell commits it.

    `agent` names who acted when there is no Caller (a failed sign-in names the account
    tried, never the password).
    """
    entity_refs = list(dict.fromkeys(entities))
    patient_refs = list(dict.fromkeys(patients))
    entry = AuditEntry(
        recorded_at=utcnow(),
        request_id=request_id,
        event_type=event_type,
        subtype=subtype,
        action=action,
        outcome=outcome,
        outcome_detail=outcome_detail,
        agent=caller.subject if caller else agent,
        agent_role=caller.role.value if caller else None,
        fhir_user=caller.fhir_user if caller else None,
        org_code=caller.org_code if caller else None,
        country=caller.country if caller else None,
        purpose_of_use=caller.purpose_of_use if caller else None,
        source_ip=source_ip,
        entities=entity_refs,
        patients=patient_refs,
    )
    session.add(entry)
    session.flush()
    session.add_all(
        [AuditReference(audit_id=entry.id, reference=r, kind="entity") for r in entity_refs]
        + [AuditReference(audit_id=entry.id, reference=r, kind="patient") for r in patient_refs]
    )
    _seal_after_commit(session)
    return entry
