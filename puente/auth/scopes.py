"""SMART App Launch v2 scopes (`system/Observation.rs`), with v1 `.read`/`.write` read too.

Roles bound what a token may carry: a token's scopes are what was asked for, narrowed to
what the role allows (ARCHITECTURE.md, "Roles").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PERMISSIONS = "cruds"
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


class Role(StrEnum):
    SYSTEM = "system"
    CLINICIAN = "clinician"
    PATIENT = "patient"
    CONSENT_OFFICER = "consent-officer"
    ANALYST = "analyst"
    ADMIN = "admin"


PEOPLE_ROLES = frozenset(Role) - {Role.SYSTEM}
ROLES_WITH_SUBJECT = frozenset({Role.CLINICIAN, Role.PATIENT})


class Interaction(StrEnum):
    CREATE = "c"
    READ = "r"
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


@dataclass(frozen=True, order=True)
class Scope:
    context: str  # patient | user | system
    resource_type: str  # a FHIR type or "*"
    permissions: str  # a subset of "cruds", in that order

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        match = _SCOPE.match(text.split("?", 1)[0])
        if not match:
            return None
        context, resource_type, perms = match.groups()
        perms = _V1.get(perms, perms)
        if not perms or any(p not in PERMISSIONS for p in perms):
            return None
        ordered = "".join(p for p in PERMISSIONS if p in perms)
        return cls(context, resource_type, ordered)

    def __str__(self) -> str:
        return f"{self.context}/{self.resource_type}.{self.permissions}"

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        return self.resource_type in ("*", resource_type) and interaction.value in self.permissions

    def narrowed_to(self, ceiling: Scope) -> Scope | None:
        """This scope limited by one the role allows, or None if they share nothing."""
        if self.context != ceiling.context:
            return None
        if ceiling.resource_type == "*":
            resource_type = self.resource_type
        elif self.resource_type in ("*", ceiling.resource_type):
            resource_type = ceiling.resource_type
        else:
            return None
        perms = "".join(
            p for p in PERMISSIONS if p in self.permissions and p in ceiling.permissions
        )
        return Scope(self.context, resource_type, perms) if perms else None


def _scopes(*texts: str) -> frozenset[Scope]:
    parsed = {Scope.parse(t) for t in texts}
    assert None not in parsed, texts
    return frozenset(s for s in parsed if s is not None)


# What each role may ever hold. Narrower per-record decisions belong to the disclosure gate.
ROLE_CEILING: dict[Role, frozenset[Scope]] = {
    Role.SYSTEM: _scopes("system/*.cruds"),
    Role.CLINICIAN: _scopes(
        "user/*.rs", "user/Appointment.cruds", "user/QuestionnaireResponse.cru"
    ),
    Role.PATIENT: _scopes(
        "patient/*.rs",
        "patient/Consent.cruds",
        "patient/Appointment.cru",
        "patient/QuestionnaireResponse.cru",
    ),
    Role.CONSENT_OFFICER: _scopes(
        "user/Consent.cruds",
        "user/AuditEvent.rs",
        "user/Patient.rs",
        "user/Organization.rs",
    ),
    Role.ANALYST: _scopes("user/Measure.rs", "user/MeasureReport.rs", "user/Organization.rs"),
    Role.ADMIN: _scopes("user/AuditEvent.rs", "user/Organization.rs"),
}


def grant(role: Role, requested: str | None) -> frozenset[Scope]:
    """The scopes a token for `role` carries: the request narrowed to the role's ceiling.

    No request (or only non-resource scopes such as `openid`) means the whole ceiling.
    """
    ceiling = ROLE_CEILING[role]
    wanted = [s for s in (Scope.parse(t) for t in (requested or "").split()) if s is not None]
    if not wanted:
        return ceiling
    granted = {n for w in wanted for c in ceiling if (n := w.narrowed_to(c)) is not None}
    return _without_subsumed(granted)


def _covers(wide: Scope, narrow: Scope) -> bool:
    return (
        wide.context == narrow.context
        and wide.resource_type in ("*", narrow.resource_type)
        and set(narrow.permissions) <= set(wide.permissions)
    )


def _without_subsumed(scopes: set[Scope]) -> frozenset[Scope]:
    """Drop scopes another one already covers (`user/Appointment.rs` beside `user/*.rs`),
    so a token says what it allows once."""
    return frozenset(s for s in scopes if not any(o != s and _covers(o, s) for o in scopes))


def render(scopes: frozenset[Scope]) -> str:
    return " ".join(sorted(str(s) for s in scopes))


def parse_many(text: str) -> frozenset[Scope]:
    return frozenset(s for s in (Scope.parse(t) for t in text.split()) if s is not None)
