"""Who may call Puente: hospital systems, SMART apps for people, people's accounts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from puente.db import Base, JSONDocument, UTCDateTime, utcnow


class HospitalSystem(Base):
    """A hospital's EHR as an API client and as the owner of the data it writes."""

    __tablename__ = "hospital_system"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdentifierSystem(Base):
    """An identifier system (a patient identity domain's assigning authority, e.g. a
    hospital's MRN namespace or the CURP) registered to a hospital system: what IHE PIXm
    (ITI-83) calls a domain the cross-reference manager recognizes."""

    __tablename__ = "hospital_identifier_system"
    __table_args__ = (
        UniqueConstraint("system_id", "uri", name="uq_hospital_identifier_system"),
        Index("ix_hospital_identifier_system_uri", "uri"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("hospital_system.id", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(String(255))


class SmartApp(Base):
    """An app people sign in through (authorization code + PKCE); a public client."""

    __tablename__ = "smart_app"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserAccount(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    org_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(128), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthorizationCode(Base):
    """A one-time code from the sign-in page; only its SHA-256 is stored."""

    __tablename__ = "authorization_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("smart_app.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(1000))
    scope: Mapped[str] = mapped_column(String(2000))
    code_challenge: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class UsedAssertion(Base):
    """`jti` values of client assertions already seen, kept until the assertion expires."""

    __tablename__ = "used_assertion"
    __table_args__ = (UniqueConstraint("client_id", "jti"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class LoginFailure(Base):
    """A failed sign-in, for rate limiting. The account is kept as a hash, not an address."""

    __tablename__ = "login_failure"
    __table_args__ = (
        Index("ix_login_failure_account_at", "account_hash", "at"),
        Index("ix_login_failure_ip_at", "source_ip", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_hash: Mapped[str] = mapped_column(String(64))
    source_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
