"""The one typed object that says who is calling; every service function receives it."""

from __future__ import annotations

from dataclasses import dataclass, field

from puente.auth.scopes import Interaction, Role, Scope
from puente.errors import Forbidden
from translation.i18n import N_

DEFAULT_PURPOSE = "TREAT"


@dataclass(frozen=True)
class Caller:
    subject: str  # the client id for systems, the account id for people
    role: Role
    org_code: str | None  # the hospital system (`hgcj`), None for consortium-wide roles
    country: str | None  # MX | US
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    purpose_of_use: str = DEFAULT_PURPOSE
    fhir_user: str | None = None  # Practitioner/<id> or Patient/<id> for people
    locale: str | None = None  # a person's stored preference
    token_id: str | None = None

    @property
    def organization(self) -> str | None:
        return f"Organization/{self.org_code}" if self.org_code else None

    @property
    def is_system(self) -> bool:
        return self.role is Role.SYSTEM

    def may(self, resource_type: str, interaction: Interaction) -> bool:
        return any(s.allows(resource_type, interaction) for s in self.scopes)

    def require(self, resource_type: str, interaction: Interaction) -> None:
        """403 when neither role nor scope allows it; records are hidden elsewhere (404)."""
        if not self.may(resource_type, interaction):
            raise Forbidden(
                N_("error.scope_missing"),
                resource_type=resource_type,
                interaction=interaction.name.lower(),
            )
