"""The OAuth 2.0 flows: the authorization request and its one-time codes (RFC 6749
section 4.1 with PKCE, RFC 7636), and the token grants (authorization_code for people,
client_credentials for hospital systems with SMART Backend Services' private_key_jwt).

Like the service, these flush and never commit; a refused grant raises after appending
its audit row, and the caller still commits so that the failure is on record.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from puente.auth import jwks as jwk_sets
from puente.auth import pkce, tokens
from puente.auth.caller import Caller
from puente.auth.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnknownApp,
    UnsupportedResponseType,
)
from puente.auth.hashing import sha256_hex, verify_secret
from puente.auth.models import (
    AuthorizationCode,
    HospitalSystem,
    SmartApp,
    UsedAssertion,
    UserAccount,
)
from puente.auth.scopes import Role, Scope, grant
from puente.auth.service import Trail, audit_login, check_purpose, person_caller, system_caller
from puente.db import utcnow
from puente.settings import get_settings
from translation.i18n import N_

MAX_SCOPE, MAX_STATE = 2000, 1000


# --- the authorization request (RFC 6749 section 4.1, RFC 7636) --------------------------


@dataclass(frozen=True)
class AuthorizationRequest:
    response_type: str = ""
    client_id: str = ""
    redirect_uri: str = ""
    scope: str = ""
    state: str = ""
    code_challenge: str = ""
    code_challenge_method: str = ""
    aud: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AuthorizationRequest:
        return cls(**{f.name: str(params.get(f.name, "")) for f in fields(cls)})

    def as_params(self) -> list[tuple[str, str]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)]


def _check_scope_syntax(requested: str) -> None:
    """invalid_scope for a scope string too long to keep or with a malformed resource scope;
    other scopes (`openid`, `fhirUser`, `launch/patient`) pass untouched."""
    if len(requested) > MAX_SCOPE:
        raise InvalidScope()
    resource_like = [
        t for t in requested.split() if t.split("/", 1)[0] in ("patient", "user", "system")
    ]
    if any(Scope.parse(t) is None for t in resource_like):
        raise InvalidScope()


def _requested_scopes(role: Role, requested: str) -> frozenset[Scope]:
    """What a token for `role` carries; invalid_scope when a resource scope is malformed or
    nothing asked for can be granted (RFC 6749 section 5.2)."""
    _check_scope_syntax(requested)
    granted = grant(role, requested)
    if not granted:
        raise InvalidScope()
    return granted


def check_authorization_request(session: Session, *, request: AuthorizationRequest) -> SmartApp:
    """The app asking; UnknownApp when the client or redirect_uri is not registered (never
    redirect then), else an OAuthError to send back to the redirect_uri."""
    app = session.scalars(
        select(SmartApp).where(SmartApp.client_id == request.client_id[:64])
    ).one_or_none()
    if app is None:
        raise UnknownApp(N_("auth.app_unknown"))
    if request.redirect_uri not in app.redirect_uris:
        raise UnknownApp(N_("auth.redirect_uri_unregistered"))
    if request.response_type != "code":
        raise UnsupportedResponseType()
    if not request.state or len(request.state) > MAX_STATE:
        raise InvalidRequest(N_("auth.parameter_missing"), name="state")
    if not pkce.valid_challenge(request.code_challenge):
        raise InvalidRequest(N_("auth.pkce_required"))
    if request.code_challenge_method != "S256":
        # RFC 7636 section 4.3: a missing method means `plain`, which Puente refuses.
        raise InvalidRequest(N_("auth.pkce_method_unsupported"))
    settings = get_settings()
    if request.aud and request.aud.rstrip("/") != settings.fhir_base_url:
        raise InvalidRequest(N_("auth.audience_mismatch"), aud=settings.fhir_base_url)
    _check_scope_syntax(request.scope)
    return app


def create_authorization_code(
    session: Session, *, app: SmartApp, account: UserAccount, request: AuthorizationRequest
) -> str:
    """A one-time code for the signed-in person, bound to the app, redirect_uri, scope and
    PKCE challenge; only its SHA-256 is stored."""
    _requested_scopes(Role(account.role), request.scope)
    code = secrets.token_urlsafe(32)
    session.add(
        AuthorizationCode(
            code_hash=sha256_hex(code),
            app_id=app.id,
            user_id=account.id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            code_challenge=request.code_challenge,
            expires_at=utcnow() + dt.timedelta(seconds=get_settings().auth_code_ttl),
            used=False,
        )
    )
    session.flush()
    return code


# --- token grants ---------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGrant:
    issued: tokens.IssuedToken
    caller: Caller

    def response(self) -> dict[str, Any]:
        """The token response of SMART App Launch / Backend Services."""
        body: dict[str, Any] = {
            "access_token": self.issued.access_token,
            "token_type": "Bearer",
            "expires_in": self.issued.expires_in,
            "scope": self.issued.scope,
        }
        if self.caller.fhir_user:
            body["fhirUser"] = self.caller.fhir_user
            if self.caller.role is Role.PATIENT:
                body["patient"] = self.caller.fhir_user.split("/", 1)[1]
        return body


def _issue(caller: Caller, scopes: frozenset[Scope]) -> TokenGrant:
    settings = get_settings()
    issued = tokens.issue(
        settings,
        subject=caller.subject,
        role=caller.role,
        scopes=scopes,
        org_code=caller.org_code,
        country=caller.country,
        purpose_of_use=caller.purpose_of_use,
        fhir_user=caller.fhir_user,
        locale=caller.locale,
    )
    return TokenGrant(issued, tokens.read(settings, issued.access_token))


def _record_assertion(
    session: Session, client_id: str, verified: jwk_sets.VerifiedAssertion
) -> None:
    """Remember the `jti` until the assertion expires; a second use is refused (RFC 7523
    section 3, SMART Backend Services). The insert itself decides, so two concurrent
    replays cannot both pass."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(UsedAssertion)
        .values(client_id=client_id, jti=verified.jti, expires_at=verified.expires_at)
        .on_conflict_do_nothing(index_elements=["client_id", "jti"])
        .returning(UsedAssertion.id)
    )
    # RETURNING rather than rowcount: psycopg reports no rowcount for this statement.
    if session.execute(statement).first() is None:
        raise InvalidClient(N_("auth.assertion_replayed"))


def _active_system(session: Session, client_id: str) -> HospitalSystem | None:
    return session.scalars(
        select(HospitalSystem).where(
            HospitalSystem.client_id == client_id[:64], HospitalSystem.active.is_(True)
        )
    ).one_or_none()


def _authenticate_system(
    session: Session,
    *,
    basic: tuple[str, str] | None,
    client_id: str | None,
    assertion_type: str | None,
    assertion: str | None,
) -> HospitalSystem:
    if basic is not None:
        if assertion_type or assertion:
            raise InvalidRequest(N_("auth.client_auth_multiple"))
        system = _active_system(session, basic[0])
        if not verify_secret(system.secret_hash if system else None, basic[1]) or not system:
            raise InvalidClient(basic=True)
        return system
    if not assertion_type and not assertion:
        raise InvalidClient(N_("auth.client_auth_method_unsupported"), basic=True)
    if assertion_type != jwk_sets.ASSERTION_TYPE:
        raise InvalidClient(N_("auth.assertion_type_unsupported"))
    if not assertion:
        raise InvalidRequest(N_("auth.parameter_missing"), name="client_assertion")
    claimed = client_id or jwk_sets.unverified_issuer(assertion)
    if not claimed:
        raise InvalidClient(N_("auth.assertion_malformed"))
    system = _active_system(session, claimed)
    if system is None:
        raise InvalidClient()
    verified = jwk_sets.verify_assertion(
        assertion,
        client_id=system.client_id,
        jwks=system.jwks,
        audience=get_settings().token_url,
        now=utcnow(),
    )
    _record_assertion(session, system.client_id, verified)
    return system


def client_credentials_grant(
    session: Session,
    *,
    basic: tuple[str, str] | None = None,
    client_id: str | None = None,
    client_assertion_type: str | None = None,
    client_assertion: str | None = None,
    scope: str | None = None,
    purpose_of_use: str | None = None,
    source_ip: str | None = None,
    request_id: str | None = None,
) -> TokenGrant:
    """A hospital system's token: client_secret_basic, or SMART Backend Services'
    private_key_jwt (RFC 7523). Every attempt is audited; a failed one names the client
    id it claimed."""
    trail = Trail("client-credentials", source_ip, request_id)
    try:
        system = _authenticate_system(
            session,
            basic=basic,
            client_id=client_id,
            assertion_type=client_assertion_type,
            assertion=client_assertion,
        )
        caller = system_caller(
            system, purpose_of_use=check_purpose(purpose_of_use), scopes=frozenset()
        )
        result = _issue(caller, _requested_scopes(Role.SYSTEM, scope or ""))
    except OAuthError as exc:
        claimed = basic[0] if basic else client_id
        if claimed is None and client_assertion:
            claimed = jwk_sets.unverified_issuer(client_assertion)
        audit_login(session, trail, agent=claimed, failure=exc.issues[0].message_key)
        raise
    audit_login(session, trail, caller=result.caller)
    return result


def _redeem_code(session: Session, code: str) -> AuthorizationCode | None:
    """Mark the code used in one statement, so that it is redeemed at most once even when
    two requests race (RFC 6749 section 4.1.2)."""
    statement = (
        update(AuthorizationCode)
        .where(
            AuthorizationCode.code_hash == sha256_hex(code),
            AuthorizationCode.used.is_(False),
            AuthorizationCode.expires_at > utcnow(),
        )
        .values(used=True)
        .returning(AuthorizationCode)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(statement).one_or_none()


def _code_grant(
    session: Session,
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    code_verifier: str,
    purpose_of_use: str | None,
) -> TokenGrant:
    required = {
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": code_verifier,
    }
    for name, value in required.items():
        if not value:
            raise InvalidRequest(N_("auth.parameter_missing"), name=name)
    purpose = check_purpose(purpose_of_use)
    app = session.scalars(
        select(SmartApp).where(SmartApp.client_id == client_id[:64])
    ).one_or_none()
    if app is None:
        raise InvalidClient()
    row = _redeem_code(session, code[:256])
    if row is None or row.app_id != app.id:
        raise InvalidGrant(N_("auth.code_invalid"))
    if row.redirect_uri != redirect_uri:
        raise InvalidGrant(N_("auth.redirect_uri_mismatch"))
    if not pkce.matches(code_verifier, row.code_challenge):
        raise InvalidGrant(N_("auth.code_verifier_mismatch"))
    account = session.get(UserAccount, row.user_id)
    if account is None or not account.active:
        raise InvalidGrant(N_("auth.code_invalid"))
    caller = replace(person_caller(session, account), purpose_of_use=purpose)
    return _issue(caller, _requested_scopes(caller.role, row.scope))


def authorization_code_grant(
    session: Session,
    *,
    code: str,
    redirect_uri: str,
    client_id: str,
    code_verifier: str,
    purpose_of_use: str | None = None,
    source_ip: str | None = None,
    request_id: str | None = None,
) -> TokenGrant:
    """A person's token for a SMART app: a one-time code, its redirect_uri, and the PKCE
    verifier (RFC 7636 section 4.6). A code is spent by its first redemption, right or
    wrong."""
    trail = Trail("authorization-code", source_ip, request_id)
    try:
        result = _code_grant(
            session,
            code=code,
            redirect_uri=redirect_uri,
            client_id=client_id,
            code_verifier=code_verifier,
            purpose_of_use=purpose_of_use,
        )
    except OAuthError as exc:
        audit_login(session, trail, agent=client_id, failure=exc.issues[0].message_key)
        raise
    audit_login(session, trail, caller=result.caller)
    return result
