"""Small factories shared by the tests of every domain."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import text
from sqlalchemy.orm import Session

from consent.codes import ICD10
from exchange import service as exchange
from puente.audit.models import AuditEntry, AuditReference
from puente.auth import service as auth
from puente.auth import tokens
from puente.auth.models import SmartApp, UserAccount
from puente.auth.scopes import Role, grant
from puente.settings import get_settings

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

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
    event_type: str = "rest",
) -> AuditEntry:
    """An unsealed audit row as a request writes it (id and instant may be chosen)."""
    role = Role(role)
    entry = AuditEntry(
        id=audit_id,
        recorded_at=recorded_at or dt.datetime.now(dt.UTC),
        request_id=uuid.uuid4().hex,
        event_type=event_type,
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


# --- authentication: systems with keys, client assertions, apps, people, PKCE ---------

REDIRECT_URI = "https://app.example/callback"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class SystemKeys:
    """A registered hospital system with its secret and the private half of its JWKS key."""

    code: str
    client_id: str
    secret: str
    private_key: PrivateKey
    kid: str
    alg: str


def private_key(alg: str = "RS384") -> PrivateKey:
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: PrivateKey, *, kid: str, alg: str) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        text_jwk = ECAlgorithm.to_jwk(key.public_key())
    else:
        text_jwk = RSAAlgorithm.to_jwk(key.public_key())
    jwk: dict[str, Any] = json.loads(text_jwk)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def add_system_with_key(
    session: Session, *, code: str = "hgcj", alg: str = "RS384", kid: str | None = None
) -> SystemKeys:
    """A hospital system registered with a fresh RS384 (RSA 2048) or ES384 (P-384) key."""
    name, country = SYSTEMS.get(code, (f"Hospital {code}", "MX"))
    key = private_key(alg)
    kid = kid or f"{code}-{alg.lower()}-1"
    system, secret = auth.add_system(
        session,
        code=code,
        name=name,
        country=country,
        jwks={"keys": [public_jwk(key, kid=kid, alg=alg)]},
    )
    return SystemKeys(code, system.client_id, secret, key, kid, alg)


def client_assertion(
    keys: SystemKeys,
    *,
    key: PrivateKey | str | None = None,
    alg: str | None = None,
    kid: str | None = None,
    iss: str | None = None,
    sub: str | None = None,
    aud: str | None = None,
    exp_in: int = 240,
    jti: str | None = None,
) -> str:
    """A SMART Backend Services client assertion (RFC 7523), valid unless told otherwise."""
    now = int(time.time())
    claims = {
        "iss": iss or keys.client_id,
        "sub": sub or keys.client_id,
        "aud": aud or get_settings().token_url,
        "iat": now,
        "exp": now + exp_in,
        "jti": jti or uuid.uuid4().hex,
    }
    return jwt.encode(
        claims,
        key if key is not None else keys.private_key,
        algorithm=alg or keys.alg,
        headers={"kid": kid or keys.kid},
    )


def add_app(
    session: Session, *, name: str = "Test app", redirect_uris: list[str] | None = None
) -> SmartApp:
    return auth.add_app(session, name=name, redirect_uris=redirect_uris or [REDIRECT_URI])


def add_person(
    session: Session,
    *,
    email: str = "dr.garza@hgcj.example",
    role: Role | str = Role.CLINICIAN,
    org: str | None = "hgcj",
    subject: str | None = "Practitioner/dr-garza",
    password: str = PASSWORD,
    locale: str | None = None,
) -> UserAccount:
    """A person's account; its hospital system must be registered first."""
    return auth.add_user(
        session,
        email=email,
        password=password,
        role=role,
        org_code=org,
        subject=subject,
        locale=locale,
    )


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 appendix B computes them."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- the store: resources as hospital systems send them --------------------------------


def fhir_json() -> dict[str, str]:
    return {"Content-Type": "application/fhir+json"}


def patient(**fields: Any) -> dict[str, Any]:
    """A Patient as a hospital system sends it (no id unless given)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Ramírez Anchondo", "given": ["José"]}],
        "gender": "male",
        "birthDate": "1985-04-12",
    }
    return {**resource, **fields}


def condition(res_id: str, subject: str, code: str = "J45.9", **fields: Any) -> dict[str, Any]:
    """A Condition about Patient `subject`, coded in ICD-10, as a hospital system sends it."""
    return {
        "resourceType": "Condition",
        "id": res_id,
        "subject": {"reference": f"Patient/{subject}"},
        "code": {"coding": [{"system": ICD10, "code": code}]},
        "recordedDate": "2026-03-02",
        **fields,
    }


def put_resource(client: TestClient, resource: dict[str, Any], headers: dict[str, str]) -> None:
    """PUT `resource` at its own id as the caller of `headers`; created or updated."""
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(url, json=resource, headers={**headers, **fhir_json()})
    assert response.status_code in (200, 201), response.text
