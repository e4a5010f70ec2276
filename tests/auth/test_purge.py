"""The housekeeping task forgets expired sign-in state, and only that."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from puente.auth import service
from puente.auth.models import AuthorizationCode, LoginFailure, UsedAssertion
from puente.auth.tasks import purge_expired
from puente.db import session_factory, unit_of_work, utcnow
from puente.settings import get_settings
from tests.factories import add_app, add_person, add_system_with_key

pytestmark = pytest.mark.usefixtures("committed")


def _counts() -> dict[str, int]:
    with session_factory()() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (UsedAssertion, AuthorizationCode, LoginFailure)
        }


def _code(
    app_id: int, user_id: int, name: str, *, expires_in: int, used: bool
) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=name.ljust(64, "0"),
        app_id=app_id,
        user_id=user_id,
        redirect_uri="https://app.example/callback",
        scope="user/*.rs",
        code_challenge="c" * 43,
        expires_at=utcnow() + dt.timedelta(seconds=expires_in),
        used=used,
    )


def test_purge_deletes_what_expired_and_is_idempotent() -> None:
    now = utcnow()
    window = get_settings().login_failure_window
    with unit_of_work() as session:
        add_system_with_key(session)
        app = add_app(session)
        person = add_person(session)
        past = now - dt.timedelta(seconds=1)
        soon = now + dt.timedelta(minutes=4)
        old = now - dt.timedelta(seconds=window + 1)
        account = service.account_hash("a@x.example")
        session.add_all(
            [
                UsedAssertion(client_id="hgcj-client", jti="old", expires_at=past),
                UsedAssertion(client_id="hgcj-client", jti="live", expires_at=soon),
                _code(app.id, person.id, "expired", expires_in=-1, used=False),
                _code(app.id, person.id, "spent", expires_in=100, used=True),
                _code(app.id, person.id, "live", expires_in=100, used=False),
                LoginFailure(account_hash=account, source_ip="1.1.1.1", at=old),
                LoginFailure(account_hash=account, source_ip="1.1.1.1", at=now),
            ]
        )
    assert _counts() == {"used_assertion": 2, "authorization_code": 3, "login_failure": 2}

    first = purge_expired.apply().get()
    assert first == {"used_assertion": 1, "authorization_code": 2, "login_failure": 1}
    assert _counts() == {"used_assertion": 1, "authorization_code": 1, "login_failure": 1}
    with session_factory()() as session:
        assert session.scalars(select(UsedAssertion.jti)).all() == ["live"]
        assert session.scalars(select(AuthorizationCode.code_hash)).one().startswith("live")

    second = purge_expired.apply().get()
    assert second == {"used_assertion": 0, "authorization_code": 0, "login_failure": 0}


def test_task_is_registered_under_its_scheduled_name() -> None:
    from puente.tasks import celery_app

    celery_app.loader.import_default_modules()
    assert celery_app.tasks["puente.auth.purge_expired"].name == purge_expired.name
    schedule = celery_app.conf.beat_schedule["purge-expired-auth-state"]
    assert schedule["task"] == purge_expired.name
