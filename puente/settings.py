"""Settings from `PUENTE_*` environment variables, with embedded defaults for a newcomer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "development-only-secret-change-me-0000000000"  # noqa: S105
DEFAULT_SQLITE_URL = "sqlite:///./var/puente.db"
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
        if problems:
            raise ValueError("; ".join(problems))
        return self

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
