"""Registering hospital systems, apps and people: what is refused, stored and audited."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.audit.models import AuditEntry
from puente.auth import service
from puente.auth.models import HospitalSystem, UserAccount
from puente.errors import Conflict, InvalidRequest
from tests.factories import add_person, private_key, public_jwk


def _admin_events(db: Session) -> list[tuple[str, str, list[str]]]:
    rows = db.scalars(
        select(AuditEntry).where(AuditEntry.event_type == "security-admin").order_by(AuditEntry.id)
    ).all()
    return [(r.subtype, r.action, r.entities) for r in rows]


def test_system_is_stored_with_a_hashed_secret_and_audited(db: Session) -> None:
    system, secret = service.add_system(
        db, code="hgcj", name="Hospital General de Ciudad Juárez", country="MX", actor="cli:ana"
    )
    stored = db.scalars(select(HospitalSystem).where(HospitalSystem.code == "hgcj")).one()
    assert stored.client_id == system.client_id == "hgcj-client"
    assert len(secret) >= 40
    assert secret not in stored.secret_hash
    assert stored.secret_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(stored.secret_hash, secret)
    assert stored.jwks is None
    assert _admin_events(db) == [("system-add", "C", ["Organization/hgcj"])]
    assert db.scalars(select(AuditEntry)).one().agent == "cli:ana"


@pytest.mark.parametrize("code", ["H", "hgcj!", "1hgcj", "Hgcj", "h", "a" * 33, ""])
def test_system_code_shape(db: Session, code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        service.add_system(db, code=code, name="X", country="MX")
    assert refused.value.issues[0].message_key == "account.system_code_invalid"


def test_system_country(db: Session) -> None:
    with pytest.raises(InvalidRequest) as refused:
        service.add_system(db, code="hgcj", name="X", country="CA")
    assert refused.value.issues[0].message_key == "account.country_invalid"


def test_duplicate_system(db: Session) -> None:
    service.add_system(db, code="hgcj", name="X", country="MX")
    with pytest.raises(Conflict):
        service.add_system(db, code="hgcj", name="Y", country="US")


def _jwk(alg: str = "RS384", kid: str = "k1") -> dict[str, Any]:
    return public_jwk(private_key(alg), kid=kid, alg=alg)


def test_public_jwks_is_stored(db: Session) -> None:
    jwks = {"keys": [_jwk("RS384", "r1"), _jwk("ES384", "e1")]}
    system, _secret = service.add_system(db, code="hgcj", name="X", country="MX", jwks=jwks)
    assert [k["kid"] for k in (system.jwks or {})["keys"]] == ["r1", "e1"]


def _private_jwk() -> dict[str, Any]:
    import json

    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {**json.loads(RSAAlgorithm.to_jwk(key)), "kid": "k1"}


@pytest.mark.parametrize(
    ("jwks", "key"),
    [
        ({"keys": [_private_jwk()]}, "account.jwks_private"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}, "account.jwks_private"),
        ({"keys": []}, "account.jwks_invalid"),
        ({"nokeys": 1}, "account.jwks_invalid"),
        ({"keys": [{**_jwk(), "kid": None}]}, "account.jwks_invalid"),
        ({"keys": [_jwk(kid="same"), _jwk(kid="same")]}, "account.jwks_invalid"),
        ({"keys": [{**_jwk(), "alg": "RS256"}]}, "account.jwks_invalid"),
        ({"keys": [{**_jwk("ES384"), "alg": "RS384"}]}, "account.jwks_invalid"),
        ({"keys": [{**_jwk(), "use": "enc"}]}, "account.jwks_invalid"),
        ({"keys": [{**_jwk(), "n": "AQAB"}]}, "account.jwks_invalid"),  # a 17-bit modulus
        ({"keys": [{**_jwk("ES384"), "crv": "P-256"}]}, "account.jwks_invalid"),
    ],
)
def test_jwks_that_cannot_be_registered(db: Session, jwks: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        service.add_system(db, code="hgcj", name="X", country="MX", jwks=jwks)
    assert refused.value.issues[0].message_key == key
    assert db.scalars(select(HospitalSystem)).all() == []


def test_small_rsa_key_is_refused(db: Session) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(InvalidRequest):
        service.add_system(
            db,
            code="hgcj",
            name="X",
            country="MX",
            jwks={"keys": [public_jwk(small, kid="k1", alg="RS384")]},
        )


def test_app_redirect_uris(db: Session) -> None:
    app = service.add_app(
        db, name="Mi Salud", redirect_uris=["https://app.example/cb", "http://127.0.0.1:8765/cb"]
    )
    assert app.client_id.startswith("app-")
    assert app.redirect_uris == ["https://app.example/cb", "http://127.0.0.1:8765/cb"]
    assert _admin_events(db) == [("app-add", "C", [f"SmartApp/{app.client_id}"])]
    with pytest.raises(Conflict):
        service.add_app(db, name="Mi Salud", redirect_uris=["https://app.example/cb"])


@pytest.mark.parametrize(
    "uri", ["http://app.example/cb", "https://app.example/cb#frag", "/relative", "app://x"]
)
def test_bad_redirect_uri(db: Session, uri: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        service.add_app(db, name="X", redirect_uris=[uri])
    assert refused.value.issues[0].message_key == "account.redirect_uri_invalid"


def test_user_is_stored_lower_cased_with_a_hashed_password(db: Session) -> None:
    service.add_system(db, code="hgcj", name="X", country="MX")
    account = add_person(db, email="Dr.Garza@HGCJ.Example", password="a long passphrase")
    stored = db.scalars(select(UserAccount)).one()
    assert stored.email == "dr.garza@hgcj.example"
    assert stored.password_hash.startswith("$argon2id$")
    assert "a long passphrase" not in stored.password_hash
    assert (stored.role, stored.org_code, stored.subject) == (
        "clinician",
        "hgcj",
        "Practitioner/dr-garza",
    )
    assert _admin_events(db)[-1] == (
        "user-add",
        "C",
        [f"UserAccount/{account.id}", "Practitioner/dr-garza"],
    )
    with pytest.raises(Conflict):
        add_person(db, email="DR.GARZA@hgcj.example")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"role": "clinician", "subject": None}, "account.subject_required"),
        ({"role": "patient", "subject": None}, "account.subject_required"),
        ({"role": "patient", "subject": "Practitioner/x"}, "account.subject_invalid"),
        ({"role": "clinician", "subject": "Patient/x"}, "account.subject_invalid"),
        ({"role": "clinician", "subject": "Practitioner/"}, "account.subject_invalid"),
        ({"role": "clinician", "org": "nowhere"}, "account.org_unknown"),
        ({"role": "consent-officer", "org": None, "subject": None}, "account.org_required"),
        ({"role": "system"}, "account.role_invalid"),
        ({"role": "superuser"}, "account.role_invalid"),
        ({"email": "not-an-address"}, "account.email_invalid"),
        ({"password": "short"}, "account.password_weak"),
        ({"locale": "fr_FR"}, "account.locale_invalid"),
    ],
)
def test_user_refusals(db: Session, kwargs: dict[str, Any], key: str) -> None:
    service.add_system(db, code="hgcj", name="X", country="MX")
    with pytest.raises(InvalidRequest) as refused:
        add_person(db, **kwargs)
    assert refused.value.issues[0].message_key == key
    assert db.scalars(select(UserAccount)).all() == []


@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_consortium_roles_need_no_hospital(db: Session, role: str) -> None:
    account = add_person(db, email=f"{role}@puente.example", role=role, org=None, subject=None)
    assert account.org_code is None
