"""Access tokens: JWTs signed by Puente (HS256 over PUENTE_SECRET_KEY), read back as a Caller.

Only HS256 is accepted on the way in, so `alg: none` and algorithm-confusion tokens are
refused by the library before any claim is read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt

from puente.auth.caller import DEFAULT_PURPOSE, Caller
from puente.auth.scopes import Role, Scope, parse_many, render
from puente.db import utcnow
from puente.errors import Unauthenticated
from puente.settings import Settings
from translation.i18n import N_

ALGORITHM = "HS256"
PURPOSES = frozenset({"TREAT", "ETREAT", "HPAYMT", "HOPERAT", "PUBHLTH", "HRESCH", "PATRQT"})


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    claims: dict[str, Any]


def issue(
    settings: Settings,
    *,
    subject: str,
    role: Role,
    scopes: frozenset[Scope],
    org_code: str | None,
    country: str | None,
    purpose_of_use: str = DEFAULT_PURPOSE,
    fhir_user: str | None = None,
    locale: str | None = None,
    ttl: int | None = None,
) -> IssuedToken:
    now = utcnow()
    lifetime = ttl if ttl is not None else settings.access_token_ttl
    scope_text = render(scopes)
    claims: dict[str, Any] = {
        "iss": settings.base_url,
        "aud": settings.fhir_base_url,
        "sub": subject,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + lifetime,
        "jti": uuid.uuid4().hex,
        "role": role.value,
        "scope": scope_text,
        "purpose_of_use": purpose_of_use,
    }
    if org_code:
        claims["org"] = org_code
        claims["organization"] = f"Organization/{org_code}"
    if country:
        claims["country"] = country
    if fhir_user:
        claims["fhirUser"] = fhir_user
    if locale:
        claims["locale"] = locale
    token = jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)
    return IssuedToken(token, lifetime, scope_text, claims)


def read(settings: Settings, token: str) -> Caller:
    """The Caller a bearer token speaks for; 401 for anything missing, expired or forged."""
    caller, expires = _verified(
        token, settings.secret_key, settings.fhir_base_url, settings.base_url
    )
    if expires <= time.time():  # it may have expired since it was first verified
        raise Unauthenticated(N_("error.token_expired"))
    return caller


# A client sends the same token with each request until it expires. Verifying its
# signature and parsing its claims was about 8% of the CPU of a read by id, so the outcome
# is kept (per secret, audience and issuer) and only the expiry is checked again. A
# refused token raises and is not kept.
@lru_cache(maxsize=4096)
def _verified(token: str, secret: str, audience: str, issuer: str) -> tuple[Caller, float]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated(N_("error.token_expired")) from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthenticated(N_("error.token_audience")) from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated(N_("error.token_invalid")) from exc
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise Unauthenticated(N_("error.token_invalid")) from exc
    purpose = claims.get("purpose_of_use", DEFAULT_PURPOSE)
    caller = Caller(
        subject=str(claims["sub"]),
        role=role,
        org_code=claims.get("org"),
        country=claims.get("country"),
        scopes=parse_many(str(claims.get("scope", ""))),
        purpose_of_use=purpose if purpose in PURPOSES else DEFAULT_PURPOSE,
        fhir_user=claims.get("fhirUser"),
        locale=claims.get("locale"),
        token_id=claims.get("jti"),
    )
    return caller, float(claims["exp"])
