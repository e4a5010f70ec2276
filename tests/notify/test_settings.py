"""Mail settings: production delivers by SMTP from its own sender, never a password in
the clear; development records to files (puente.settings)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from puente.settings import Settings

PRODUCTION: dict[str, Any] = {
    "env": "production",
    "secret_key": "s" * 40,
    "database_url": "postgresql+psycopg://puente@db/puente",
    "notify_channel": "smtp",
    "smtp_host": "smtp.example.org",
    "mail_from": "Puente <no-reply@puente.example.org>",
}


def _refusal(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**(PRODUCTION | overrides))
    return str(refused.value)


def test_a_complete_production_configuration_is_accepted() -> None:
    settings = Settings(**PRODUCTION, smtp_username="puente", smtp_password="x" * 20)
    assert (settings.smtp_tls, settings.smtp_port) == ("starttls", 587)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"notify_channel": "log"}, "PUENTE_NOTIFY_CHANNEL must be smtp"),
        ({"smtp_host": None}, "PUENTE_SMTP_HOST must be set"),
        ({"smtp_host": ""}, "PUENTE_SMTP_HOST must be set"),
        ({"mail_from": "Puente <no-reply@puente.localhost>"}, "PUENTE_MAIL_FROM"),
        ({"smtp_password": "hunter2-hunter2", "smtp_tls": "none"}, "PUENTE_SMTP_PASSWORD needs"),
    ],
)
def test_production_refuses_mail_that_would_not_leave_or_would_leak(
    overrides: dict[str, Any], named: str
) -> None:
    message = _refusal(**overrides)
    assert named in message
    assert "hunter2" not in message


def test_development_records_mail_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PUENTE_NOTIFY_CHANNEL", "PUENTE_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.notify_channel == "log"
    assert settings.smtp_host is None


def test_empty_values_from_compose_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUENTE_SMTP_USERNAME", "")
    monkeypatch.setenv("PUENTE_SMTP_PASSWORD", "")
    settings = Settings()
    assert (settings.smtp_username, settings.smtp_password) == (None, None)


@pytest.mark.parametrize("sender", ["puente", "Puente <avisos@x.org>\r\nBcc: all@x.org", ""])
def test_the_sender_must_be_one_address(sender: str) -> None:
    with pytest.raises(ValidationError, match="PUENTE_MAIL_FROM must be an address"):
        Settings(mail_from=sender)
