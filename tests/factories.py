"""Small factories shared by the tests of every domain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from exchange import service as exchange
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
