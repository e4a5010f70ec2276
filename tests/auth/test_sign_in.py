"""Signing people in: rate limiting per account and per address, and the audit trail."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from puente.audit.models import AuditEntry
from puente.auth import service
from puente.auth.errors import SignInFailed, SignInLocked
from puente.auth.models import LoginFailure
from puente.db import session_factory, unit_of_work, utcnow
from puente.settings import get_settings
from tests.factories import (
    PASSWORD,
    REDIRECT_URI,
    add_app,
    add_person,
    add_system_with_key,
    pkce_pair,
)
from translation.i18n import gettext

EMAIL = "dr.garza@hgcj.example"


@pytest.fixture
def person(db: Session) -> str:
    add_system_with_key(db)
    add_person(db, email=EMAIL)
    return EMAIL


def _fail(db: Session, email: str, ip: str) -> None:
    with pytest.raises(SignInFailed):
        service.sign_in(db, email=email, password="wrong password", source_ip=ip)


def test_right_password_signs_in(db: Session, person: str) -> None:
    account = service.sign_in(
        db, email=" DR.Garza@HGCJ.example ", password=PASSWORD, source_ip="1.2.3.4"
    )
    assert account.email == EMAIL
    assert account.subject == "Practitioner/dr-garza"


def test_account_locks_after_its_failures_even_with_the_right_password(
    db: Session, person: str
) -> None:
    limit = get_settings().login_max_failures_per_account
    for attempt in range(limit):
        _fail(db, person, ip=f"10.0.0.{attempt}")  # a different address each time
    with pytest.raises(SignInLocked):
        service.sign_in(db, email=person, password=PASSWORD, source_ip="10.0.1.1")
    # the same address case-folded is the same account
    assert service.is_locked(db, email=person.upper(), source_ip="10.9.9.9")


def test_one_failure_short_of_the_limit_still_signs_in(db: Session, person: str) -> None:
    limit = get_settings().login_max_failures_per_account
    for _attempt in range(limit - 1):
        _fail(db, person, ip="10.0.0.1")
    assert (
        service.sign_in(db, email=person, password=PASSWORD, source_ip="10.0.0.1").email == person
    )


def test_failures_are_kept_by_hash_not_by_address(db: Session, person: str) -> None:
    _fail(db, person, ip="10.0.0.7")
    failure = db.scalars(select(LoginFailure)).one()
    assert failure.account_hash == service.account_hash(person)
    assert len(failure.account_hash) == 64
    assert person not in failure.account_hash
    assert failure.account_hash != hashlib.sha256(person.encode()).hexdigest()  # keyed
    assert failure.source_ip == "10.0.0.7"


def test_address_locks_after_its_failures_across_accounts(db: Session, person: str) -> None:
    limit = get_settings().login_max_failures_per_ip
    db.add_all(
        LoginFailure(account_hash=service.account_hash(f"guess{n}@x.example"), source_ip="6.6.6.6")
        for n in range(limit)
    )
    db.flush()
    with pytest.raises(SignInLocked):
        service.sign_in(db, email=person, password=PASSWORD, source_ip="6.6.6.6")
    # the same account from elsewhere is fine
    assert service.sign_in(db, email=person, password=PASSWORD, source_ip="7.7.7.7").email == person


def test_failures_older_than_the_window_do_not_count(db: Session, person: str) -> None:
    settings = get_settings()
    long_ago = utcnow() - dt.timedelta(seconds=settings.login_failure_window + 5)
    db.add_all(
        LoginFailure(account_hash=service.account_hash(person), source_ip="1.1.1.1", at=long_ago)
        for _ in range(settings.login_max_failures_per_account + 3)
    )
    db.flush()
    assert not service.is_locked(db, email=person, source_ip="1.1.1.1")
    assert service.sign_in(db, email=person, password=PASSWORD, source_ip="1.1.1.1")


def test_unknown_account_fails_like_a_wrong_password(db: Session, person: str) -> None:
    with pytest.raises(SignInFailed) as unknown:
        service.sign_in(db, email="nobody@hgcj.example", password=PASSWORD, source_ip="1.1.1.1")
    with pytest.raises(SignInFailed) as wrong:
        service.sign_in(db, email=person, password="not it at all", source_ip="1.1.1.1")
    assert unknown.value.issues == wrong.value.issues


def test_sign_in_is_audited_without_the_password(db: Session, person: str) -> None:
    account = service.sign_in(
        db, email=person, password=PASSWORD, source_ip="1.2.3.4", request_id="req-ok-1"
    )
    _fail(db, person, ip="1.2.3.5")
    rows = db.scalars(
        select(AuditEntry).where(AuditEntry.event_type == "login").order_by(AuditEntry.id)
    ).all()
    success, failure = rows
    assert (success.subtype, success.outcome, success.action) == ("sign-in", 0, "E")
    assert success.agent == f"user-{account.id}"
    assert success.fhir_user == "Practitioner/dr-garza"
    assert (success.agent_role, success.org_code, success.country) == ("clinician", "hgcj", "MX")
    assert success.request_id == "req-ok-1"
    assert success.source_ip == "1.2.3.4"
    assert (failure.outcome, failure.agent) == (4, person)  # names the account tried
    assert failure.outcome_detail == "auth.sign_in_failed"
    for row in rows:
        content = repr({k: v for k, v in vars(row).items() if not k.startswith("_")})
        assert PASSWORD not in content
        assert "wrong password" not in content


# --- over HTTP ----------------------------------------------------------------------------


def test_locked_sign_in_page_is_429_and_audited(client: TestClient) -> None:
    with unit_of_work() as session:
        add_system_with_key(session)
        add_person(session, email=EMAIL)
        app = add_app(session)
        client_id = app.client_id
    _verifier, challenge = pkce_pair()
    form = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "user/*.rs",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "ui_locales": "es-MX",
        "email": EMAIL,
    }
    limit = get_settings().login_max_failures_per_account
    for _attempt in range(limit):
        wrong = client.post(
            "/auth/login", data={**form, "password": "wrong"}, follow_redirects=False
        )
        assert wrong.status_code == 200
        assert gettext("es_MX", "auth.sign_in_failed") in wrong.text
    locked = client.post("/auth/login", data={**form, "password": PASSWORD}, follow_redirects=False)
    assert locked.status_code == 429
    assert "location" not in locked.headers
    assert locked.headers["retry-after"] == str(get_settings().login_failure_window)
    assert gettext("es_MX", "auth.sign_in_locked") in locked.text

    with session_factory()() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == "login").order_by(AuditEntry.id)
        ).all()
        failures = session.scalars(select(LoginFailure)).all()
    assert [r.outcome_detail for r in rows] == ["auth.sign_in_failed"] * limit + [
        "auth.sign_in_locked"
    ]
    assert all(r.agent == EMAIL and r.source_ip == "testclient" for r in rows)
    assert len(failures) == limit  # a refused attempt while locked adds no failure
