"""Settings from `PUENTE_*` environment variables, with embedded defaults for a newcomer."""

from __future__ import annotations

from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "development-only-secret-change-me-0000000000"  # noqa: S105
DEFAULT_SQLITE_URL = "sqlite:///./var/puente.db"
DEFAULT_MAIL_FROM = "Puente <no-reply@puente.localhost>"
# Production refuses access tokens living longer than this (SMART recommends minutes).
MAX_PRODUCTION_TOKEN_TTL = 3600


class Settings(BaseSettings):
    """Every setting Puente reads; `PUENTE_<NAME>` in the environment overrides it."""

    # hide_input_in_errors: a refused setting's message must not echo the environment
    # (PUENTE_SECRET_KEY, the database password) into logs and tracebacks.
    model_config = SettingsConfigDict(
        env_prefix="PUENTE_", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "production"] = "development"
    base_url: str = "http://127.0.0.1:8000"
    database_url: str = DEFAULT_SQLITE_URL
    broker_url: str | None = None
    secret_key: str = PLACEHOLDER_SECRET
    access_token_ttl: int = Field(default=900, ge=30)
    auth_code_ttl: int = Field(default=120, ge=10, le=600)
    default_locale: Literal["en_US", "es_MX"] = "en_US"
    cors_origins: list[str] = Field(default_factory=list)
    # Audit every authenticated read, not only reads of patient data. Production refuses
    # switching it off; development may, to measure what auditing costs.
    audit_reads: bool = True
    # Failed sign-ins allowed in the window before the account, or the address, is locked.
    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 20
    login_failure_window: int = 900
    log_level: str = "INFO"
    # The SMART app the API reference at /docs signs people in through (PKCE); the demo
    # registers it. Unset: /docs offers no sign-in.
    docs_client_id: str | None = "puente-docs"
    # Seconds Redis waits for a worker to acknowledge a task before handing it to another
    # (a worker killed mid-task is noticed this late). Longer than any task's run.
    broker_visibility_timeout: int = Field(default=3600, ge=1)
    # The largest NDJSON body `POST /fhir/$import` accepts (413 beyond it).
    import_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    # `$export`: how long a completed export's files are kept (then purged: its status
    # answers 410), and the most resources one NDJSON file holds (a type splits beyond).
    export_retention_seconds: int = Field(default=24 * 3600, ge=60)
    export_file_max_resources: int = Field(default=10_000, ge=1)
    # The jurisdiction policy the disclosure gate applies (a TOML file laid out like
    # consent/policies/default.toml); unset: the shipped defaults.
    consent_policy: Path | None = None
    # Notifications (puente/notify). `log` writes each message as an .eml file under
    # `mail_dir` instead of sending it (development and the demo); production refuses it.
    notify_channel: Literal["smtp", "log"] = "log"
    mail_dir: Path = Path("var/mail")
    mail_from: str = DEFAULT_MAIL_FROM
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    # Seconds one SMTP operation may wait (connect, each command, the message).
    smtp_timeout: float = Field(default=30.0, gt=0, le=300)
    # Attempts before a message is marked failed; the delay doubles from the first retry
    # delay up to the cap (puente.notify.service.backoff_delay).
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_retry_delay: int = Field(default=60, ge=1)
    notify_retry_max_delay: int = Field(default=3600, ge=1)
    # A message still `sending` this long after it was claimed belongs to a worker that
    # died; the sweep settles it. Far longer than a send can take (several smtp_timeouts).
    notify_claim_timeout: int = Field(default=600, ge=60)
    # Days a sent message keeps its subject and body (what may name a patient); the row,
    # its key and its status stay, so the event still cannot queue it twice.
    notify_retention_days: int = Field(default=30, ge=1)
    # The time zone in which notices tell people the date of an event (break-the-glass):
    # Ciudad Juárez and El Paso keep the same clock.
    timezone: str = "America/Ciudad_Juarez"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("PUENTE_TIMEZONE must be an IANA time zone") from exc
        return value

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        # `Name <address>` or a bare address; a line break would let it add headers.
        address = parseaddr(value)[1]
        if "@" not in address or any(c in value for c in "\r\n"):
            raise ValueError("PUENTE_MAIL_FROM must be an address, e.g. Puente <no-reply@x.org>")
        return value

    @field_validator("smtp_host", "smtp_username", "smtp_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # compose passes `${PUENTE_SMTP_USERNAME:-}` as an empty string for "none".
        return None if value == "" else value

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        if self.secret_key == PLACEHOLDER_SECRET or len(self.secret_key) < 32:
            problems.append("PUENTE_SECRET_KEY must be set to a random value of 32+ characters")
        if self.access_token_ttl > MAX_PRODUCTION_TOKEN_TTL:
            problems.append(f"PUENTE_ACCESS_TOKEN_TTL must be at most {MAX_PRODUCTION_TOKEN_TTL} s")
        if not self.audit_reads:
            problems.append("PUENTE_AUDIT_READS cannot be switched off in production")
        if self.database_url.startswith("sqlite"):
            problems.append("PUENTE_DATABASE_URL must name PostgreSQL in production")
        problems.extend(self._mail_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _mail_problems(self) -> list[str]:
        """Production delivers mail: no .eml files of patients' notices left on disk, a
        sender of the deployment's own, and no SMTP password sent in the clear."""
        problems = []
        if self.notify_channel != "smtp":
            problems.append("PUENTE_NOTIFY_CHANNEL must be smtp in production")
        elif not self.smtp_host:
            problems.append("PUENTE_SMTP_HOST must be set in production")
        if self.mail_from == DEFAULT_MAIL_FROM:
            problems.append("PUENTE_MAIL_FROM must be set to the deployment's sender address")
        if self.smtp_password and self.smtp_tls == "none":
            problems.append("PUENTE_SMTP_PASSWORD needs PUENTE_SMTP_TLS starttls or ssl")
        return problems

    @property
    def fhir_base_url(self) -> str:
        return self.base_url.rstrip("/") + "/fhir"

    @property
    def token_url(self) -> str:
        return self.base_url.rstrip("/") + "/auth/token"

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def sqlite_path(self) -> Path | None:
        if not self.database_url.startswith("sqlite:///"):
            return None
        return Path(self.database_url.removeprefix("sqlite:///"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
