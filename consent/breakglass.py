"""Break-the-glass grants as the disclosure gate reads them: one query per request.

This module imports nothing of `exchange` (the gate, in `exchange`, imports it); the use
cases that need the store (granting, the review queue, the patient's notice) live in
`consent.breakglass_service`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.engine import BreakGlass
from consent.models import BreakGlassGrant
from consent.policy import Policy, active_policy
from puente.auth.caller import Caller


def active_grants(
    session: Session, caller: Caller, *, now: dt.datetime, policy: Policy | None = None
) -> tuple[BreakGlass, ...]:
    """The grants of this clinician (caller.subject) not yet expired at `now`, soonest
    expiry first. Roles that cannot break the glass have none (no query)."""
    if caller.role.value not in (policy or active_policy()).btg_roles:
        return ()
    rows = session.execute(
        select(BreakGlassGrant.patient_id, BreakGlassGrant.expires_at)
        .where(
            BreakGlassGrant.clinician == caller.subject,
            BreakGlassGrant.org_code == (caller.org_code or ""),
            BreakGlassGrant.expires_at > now,
        )
        .order_by(BreakGlassGrant.expires_at, BreakGlassGrant.patient_id)
    ).all()
    return tuple(BreakGlass(patient=patient, expires=expires) for patient, expires in rows)
