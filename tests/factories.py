"""Small factories shared by the tests of every domain."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from exchange import service as exchange
from puente.audit.models import AuditEntry, AuditReference
from puente.auth import tokens
from puente.auth.scopes import Role, grant
from puente.settings import get_settings

SYSTEMS = {
    "hgcj": ("Hospital General de Ciudad Juárez", "MX"),
    "umcep": ("University Medical Center of El Paso", "US"),
}


def organizations(session: Session) -> None:
    """The two demo hospitals' Organizations, each partOf its country's."""
    for code, (name, country) in SYSTEMS.items():
        exchange.register_hospital_organization(session, code=code, name=name, country=country)


def token(
    role: Role | str = Role.SYSTEM,
    org: str | None = "hgcj",
    *,
    scope: str | None = None,
    subject: str | None = None,
    fhir_user: str | None = None,
    purpose: str = "TREAT",
    locale: str | None = None,
    ttl: int | None = None,
) -> str:
    """A signed access token as the token endpoint would issue it."""
    role = Role(role)
    country = SYSTEMS[org][1] if org in SYSTEMS else None
    issued = tokens.issue(
        get_settings(),
        subject=subject or (f"{org}-client" if role is Role.SYSTEM else f"{role.value}@{org}"),
        role=role,
        scopes=grant(role, scope),
        org_code=org,
        country=country,
        purpose_of_use=purpose,
        fhir_user=fhir_user,
        locale=locale,
        ttl=ttl,
    )
    return issued.access_token


def bearer(
    role: Role | str = Role.SYSTEM, org: str | None = "hgcj", **kwargs: object
) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, org, **kwargs)}"}  # type: ignore[arg-type]


def audit_entry(
    session: Session,
    *,
    audit_id: int | None = None,
    org: str = "hgcj",
    role: Role | str = Role.SYSTEM,
    subtype: str = "read",
    action: str = "R",
    outcome: int = 0,
    entities: tuple[str, ...] = ("Organization/hgcj",),
    patients: tuple[str, ...] = (),
    recorded_at: dt.datetime | None = None,
    fhir_user: str | None = None,
) -> AuditEntry:
    """An unsealed audit row as a request writes it (id and instant may be chosen)."""
    role = Role(role)
    entry = AuditEntry(
        id=audit_id,
        recorded_at=recorded_at or dt.datetime.now(dt.UTC),
        request_id=uuid.uuid4().hex,
        event_type="rest",
        subtype=subtype,
        action=action,
        outcome=outcome,
        outcome_detail=None if outcome == 0 else "error.not_found",
        agent=f"{org}-client" if role is Role.SYSTEM else f"{role.value}@{org}",
        agent_role=role.value,
        fhir_user=fhir_user,
        org_code=org,
        country=SYSTEMS[org][1] if org in SYSTEMS else None,
        purpose_of_use="TREAT",
        source_ip="203.0.113.7",
        entities=list(entities),
        patients=list(patients),
    )
    session.add(entry)
    session.flush()
    if audit_id is not None and session.get_bind().dialect.name == "postgresql":
        # keep the sequence ahead of chosen ids, as if the database had assigned them
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('audit_entry', 'id'), "
                "(SELECT max(id) FROM audit_entry))"
            )
        )
    session.add_all(
        [AuditReference(audit_id=entry.id, reference=r, kind="entity") for r in entities]
        + [AuditReference(audit_id=entry.id, reference=r, kind="patient") for r in patients]
    )
    session.flush()
    return entry
