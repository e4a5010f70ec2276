"""AuditEvent (read-only) for consent officers and admins, shaped after IHE BALP."""

from __future__ import annotations

from fastapi import APIRouter

from puente.web import TransactionalRoute

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["Audit"])
