"""Use cases of authentication: registering systems, apps and accounts, signing people in,
and the OAuth 2.0 grants that turn either into an access token.

Plain functions taking a `Session`; they flush, never commit. A refused sign-in or grant
raises *after* appending its audit row (and, for people, its `login_failure` row): the
caller renders the error and still commits, so failures are on record.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from puente.audit import service as audit
from puente.auth import jwks as jwk_sets
from puente.auth import tokens
from puente.auth.caller import DEFAULT_PURPOSE, Caller
from puente.auth.errors import (
    InvalidRequest,
    SignInFailed,
    SignInLocked,
)
from puente.auth.hashing import hash_secret, keyed_sha256_hex, verify_secret
from puente.auth.models import (
    AuthorizationCode,
    HospitalSystem,
    IdentifierSystem,
    LoginFailure,
    SmartApp,
    UsedAssertion,
    UserAccount,
)
from puente.auth.scopes import PEOPLE_ROLES, Role, Scope, grant
from puente.db import utcnow
from puente.errors import Conflict
from puente.errors import InvalidRequest as InvalidInput
from puente.settings import MAX_PRODUCTION_TOKEN_TTL, get_settings
from translation.i18n import N_, SUPPORTED

SYSTEM_CODE = re.compile(r"^[a-z][a-z0-9]{1,31}$")
COUNTRIES = frozenset({"MX", "US"})
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
# Local part @ domain; a dotless domain (`clinician@hgcj`) is allowed for on-premise mail.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.][^@\s]*$")
_SUBJECT = re.compile(r"^(Practitioner|Patient)/[A-Za-z0-9\-.]{1,64}$")
SUBJECT_TYPE = {Role.CLINICIAN: "Practitioner", Role.PATIENT: "Patient"}
ORG_OPTIONAL = frozenset({Role.ANALYST, Role.ADMIN})
MIN_PASSWORD, MAX_PASSWORD = 12, 1024
OPERATOR = "operator"


# --- registering systems, apps and people -------------------------------------------


def _audit_admin(session: Session, *, subtype: str, actor: str | None, entities: list[str]) -> None:
    audit.append(
        session,
        event_type="security-admin",
        subtype=subtype,
        action="C",
        agent=actor or OPERATOR,
        entities=entities,
    )


def system_caller(
    system: HospitalSystem,
    *,
    purpose_of_use: str = DEFAULT_PURPOSE,
    scopes: frozenset[Scope] | None = None,
) -> Caller:
    """A hospital system as a Caller: by default with every scope on its own data, as
    `puente token --role system` and `puente import --system` act."""
    return Caller(
        subject=system.client_id,
        role=Role.SYSTEM,
        org_code=system.code,
        country=system.country,
        scopes=grant(Role.SYSTEM, None) if scopes is None else scopes,
        purpose_of_use=purpose_of_use,
    )


def client_id_for(code: str) -> str:
    """A system's OAuth client id. Public (RFC 6749 section 2.2), so derived from the code:
    operators and hospital integrators can tell it from the code alone."""
    return f"{code}-client"


def find_system(session: Session, code: str) -> HospitalSystem | None:
    return session.scalars(select(HospitalSystem).where(HospitalSystem.code == code)).one_or_none()


def add_system(
    session: Session,
    *,
    code: str,
    name: str,
    country: str,
    jwks: dict[str, Any] | None = None,
    identifier_systems: Sequence[str] = (),
    actor: str | None = None,
) -> tuple[HospitalSystem, str]:
    """Register a hospital system as an API client, with the identifier systems its
    Patients carry; returns it and its client secret, which is shown this once (only its
    argon2 hash is kept)."""
    if not SYSTEM_CODE.match(code):
        raise InvalidInput(N_("account.system_code_invalid"))
    if country not in COUNTRIES:
        raise InvalidInput(N_("account.country_invalid"))
    if not name.strip() or len(name) > 200:
        raise InvalidInput(N_("account.name_invalid"))
    try:
        stored_jwks = jwk_sets.validate_jwks(jwks) if jwks is not None else None
    except jwk_sets.JWKSError as exc:
        raise InvalidInput(exc.message_key) from exc
    if find_system(session, code) is not None:
        raise Conflict(N_("account.system_exists"), code=code)
    secret = secrets.token_urlsafe(32)
    system = HospitalSystem(
        code=code,
        name=name.strip(),
        country=country,
        client_id=client_id_for(code),
        secret_hash=hash_secret(secret),
        jwks=stored_jwks,
        active=True,
    )
    session.add(system)
    session.flush()
    _audit_admin(session, subtype="system-add", actor=actor, entities=[f"Organization/{code}"])
    if identifier_systems:
        add_identifier_systems(session, code=code, uris=identifier_systems, actor=actor)
    return system, secret


def _identifier_uri(uri: str) -> str:
    """An identifier system as FHIR's `Identifier.system`: an absolute URI (R4 2.24.0.1)."""
    value = uri.strip()
    scheme, colon, rest = value.partition(":")
    if not colon or not rest or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise InvalidInput(N_("account.identifier_system_invalid"), uri=value[:200])
    if len(value) > 255 or any(c.isspace() for c in value):
        raise InvalidInput(N_("account.identifier_system_invalid"), uri=value[:200])
    return value


def add_identifier_systems(
    session: Session, *, code: str, uris: Sequence[str], actor: str | None = None
) -> list[str]:
    """Register identifier systems to a hospital system (those already registered are
    kept); returns every identifier system now registered to it, sorted."""
    system = find_system(session, code)
    if system is None:
        raise InvalidInput(N_("account.org_unknown"), code=code[:32])
    wanted = {_identifier_uri(uri) for uri in uris}
    known = set(
        session.scalars(select(IdentifierSystem.uri).where(IdentifierSystem.system_id == system.id))
    )
    added = sorted(wanted - known)
    session.add_all(IdentifierSystem(system_id=system.id, uri=uri) for uri in added)
    session.flush()
    if added:
        _audit_admin(
            session, subtype="system-identifiers", actor=actor, entities=[f"Organization/{code}"]
        )
    return sorted(known | wanted)


def recognized_identifier_systems(session: Session, uris: Iterable[str]) -> set[str]:
    """Those of `uris` registered to some hospital system (IHE PIXm's recognized domains)."""
    asked = sorted(set(uris))
    if not asked:
        return set()
    return set(
        session.scalars(
            select(IdentifierSystem.uri).where(IdentifierSystem.uri.in_(asked)).distinct()
        )
    )


def _check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    # RFC 6749 section 3.1.2: absolute, no fragment; RFC 8252 allows http on loopback only.
    if (
        len(uri) > 1000
        or parts.fragment
        or not parts.hostname
        or not (parts.scheme == "https" or (parts.scheme == "http" and loopback))
    ):
        raise InvalidInput(N_("account.redirect_uri_invalid"), uri=uri[:200])


def add_app(
    session: Session,
    *,
    name: str,
    redirect_uris: list[str],
    client_id: str | None = None,
    actor: str | None = None,
) -> SmartApp:
    """Register a SMART app people sign in through (a public client: PKCE, no secret).

    `client_id` names it when an operator must know it beforehand (the API reference's
    own app, `PUENTE_DOCS_CLIENT_ID`); otherwise one is made.
    """
    if client_id is not None and not CLIENT_ID.match(client_id):
        raise InvalidInput(N_("account.client_id_invalid"))
    if not name.strip() or len(name) > 200:
        raise InvalidInput(N_("account.name_invalid"))
    if not redirect_uris:
        raise InvalidInput(N_("account.redirect_uri_required"))
    for uri in redirect_uris:
        _check_redirect_uri(uri)
    if session.scalar(select(SmartApp.id).where(SmartApp.name == name.strip())):
        raise Conflict(N_("account.app_exists"), name=name.strip())
    if client_id is not None and session.scalar(
        select(SmartApp.id).where(SmartApp.client_id == client_id)
    ):
        raise Conflict(N_("account.app_exists"), name=client_id)
    app = SmartApp(
        client_id=client_id or f"app-{secrets.token_hex(8)}",
        name=name.strip(),
        redirect_uris=list(dict.fromkeys(redirect_uris)),
    )
    session.add(app)
    session.flush()
    _audit_admin(session, subtype="app-add", actor=actor, entities=[f"SmartApp/{app.client_id}"])
    return app


def _check_subject(role: Role, subject: str | None) -> None:
    expected = SUBJECT_TYPE.get(role)
    if subject is None:
        if expected:
            raise InvalidInput(N_("account.subject_required"), role=role.value, type=expected)
        return
    if not _SUBJECT.match(subject) or (expected and not subject.startswith(expected + "/")):
        raise InvalidInput(N_("account.subject_invalid"), type=expected or "Practitioner")


def _country_of(session: Session, role: Role, org_code: str | None) -> str | None:
    """The country of a person's hospital system; the org must exist, and is required
    except for consortium-wide roles."""
    if org_code is None:
        if role not in ORG_OPTIONAL:
            raise InvalidInput(N_("account.org_required"), role=role.value)
        return None
    country = session.scalar(select(HospitalSystem.country).where(HospitalSystem.code == org_code))
    if country is None:
        raise InvalidInput(N_("account.org_unknown"), code=org_code[:32])
    return country


def _person_role(role: Role | str) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        parsed = None
    if parsed is None or parsed not in PEOPLE_ROLES:
        raise InvalidInput(N_("account.role_invalid"), role=str(role)[:32])
    return parsed


def add_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: Role | str,
    org_code: str | None = None,
    subject: str | None = None,
    locale: str | None = None,
    actor: str | None = None,
) -> UserAccount:
    """A person's account; the password is kept only as an argon2 hash."""
    address = email.strip().lower()
    if len(address) > 254 or not _EMAIL.match(address):
        raise InvalidInput(N_("account.email_invalid"))
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(N_("account.password_weak"), min=MIN_PASSWORD)
    person_role = _person_role(role)
    _check_subject(person_role, subject)
    _country_of(session, person_role, org_code)
    if locale is not None and locale not in SUPPORTED:
        raise InvalidInput(N_("account.locale_invalid"), supported=", ".join(SUPPORTED))
    if session.scalar(select(UserAccount.id).where(UserAccount.email == address)):
        raise Conflict(N_("account.email_exists"))
    account = UserAccount(
        email=address,
        password_hash=hash_secret(password),
        role=person_role.value,
        org_code=org_code,
        subject=subject,
        locale=locale,
        active=True,
    )
    session.add(account)
    session.flush()
    entities = [f"UserAccount/{account.id}"] + ([subject] if subject else [])
    _audit_admin(session, subtype="user-add", actor=actor, entities=entities)
    return account


def check_purpose(purpose_of_use: str | None) -> str:
    purpose = purpose_of_use or DEFAULT_PURPOSE
    if purpose not in tokens.PURPOSES:
        raise InvalidRequest(
            N_("auth.purpose_invalid"), purposes=", ".join(sorted(tokens.PURPOSES))
        )
    return purpose


def token_for(
    session: Session,
    *,
    role: Role | str,
    org_code: str | None = None,
    subject: str | None = None,
    purpose_of_use: str = DEFAULT_PURPOSE,
    ttl: int | None = None,
    actor: str | None = None,
) -> tokens.IssuedToken:
    """A token an operator mints (`puente token`), with the role's every scope. A system
    token acts as that hospital system; lifetimes above the production ceiling only in
    development mode."""
    settings = get_settings()
    token_role = Role(role)
    if ttl is not None and ttl > MAX_PRODUCTION_TOKEN_TTL and not settings.is_development:
        raise InvalidInput(N_("account.ttl_too_long"), max=MAX_PRODUCTION_TOKEN_TTL)
    purpose = check_purpose(purpose_of_use)
    fhir_user = None
    country: str | None
    if token_role is Role.SYSTEM:
        system = find_system(session, org_code or "")
        if system is None:
            raise InvalidInput(N_("account.org_unknown"), code=(org_code or "")[:32])
        token_subject, country = system.client_id, system.country
    else:
        _check_subject(token_role, subject)
        country = _country_of(session, token_role, org_code)
        token_subject = subject or f"{token_role.value}@{org_code or 'puente'}"
        fhir_user = subject
    issued = tokens.issue(
        settings,
        subject=token_subject,
        role=token_role,
        scopes=grant(token_role, None),
        org_code=org_code,
        country=country,
        purpose_of_use=purpose,
        fhir_user=fhir_user,
        ttl=ttl,
    )
    audit.append(
        session,
        event_type="security-admin",
        subtype="token-issue",
        action="E",
        agent=actor or OPERATOR,
        entities=[f"Organization/{org_code}"] if org_code else [],
    )
    return issued


# --- signing people in ----------------------------------------------------------------


def account_hash(email: str) -> str:
    """How `login_failure` names an account (never the address itself)."""
    return keyed_sha256_hex(get_settings().secret_key, email.strip().lower())


def _failures_since(
    session: Session, column: InstrumentedAttribute[str], value: str, since: dt.datetime
) -> int:
    query = (
        select(func.count())
        .select_from(LoginFailure)
        .where(column == value, LoginFailure.at >= since)
    )
    return session.scalar(query) or 0


def is_locked(session: Session, *, email: str, source_ip: str | None) -> bool:
    """Whether sign-in is refused for now: the account, or the address it comes from, has
    used up its failed attempts within the window."""
    settings = get_settings()
    since = utcnow() - dt.timedelta(seconds=settings.login_failure_window)
    by_account = _failures_since(session, LoginFailure.account_hash, account_hash(email), since)
    by_ip = _failures_since(session, LoginFailure.source_ip, _ip(source_ip), since)
    return (
        by_account >= settings.login_max_failures_per_account
        or by_ip >= settings.login_max_failures_per_ip
    )


def _ip(source_ip: str | None) -> str:
    return (source_ip or "unknown")[:64]


def person_caller(session: Session, account: UserAccount) -> Caller:
    role = Role(account.role)
    return Caller(
        subject=f"user-{account.id}",
        role=role,
        org_code=account.org_code,
        country=_country_of(session, role, account.org_code) if account.org_code else None,
        fhir_user=account.subject,
        locale=account.locale,
    )


@dataclass(frozen=True)
class Trail:
    """What a login audit row says about the attempt besides who and how it ended."""

    subtype: str  # sign-in | client-credentials | authorization-code
    source_ip: str | None
    request_id: str | None


def audit_login(
    session: Session,
    trail: Trail,
    *,
    caller: Caller | None = None,
    agent: str | None = None,
    failure: str | None = None,
) -> None:
    audit.append(
        session,
        event_type="login",
        subtype=trail.subtype,
        action="E",
        outcome=audit.MINOR_FAILURE if failure else audit.SUCCESS,
        outcome_detail=failure,
        caller=caller,
        agent=agent[:254] if agent else None,
        request_id=trail.request_id,
        source_ip=trail.source_ip,
        entities=[caller.fhir_user] if caller and caller.fhir_user else [],
    )


def sign_in(
    session: Session,
    *,
    email: str,
    password: str,
    source_ip: str | None,
    request_id: str | None = None,
) -> UserAccount:
    """The account whose password this is; SignInLocked while rate limited (even with the
    right password), SignInFailed otherwise, without saying whether the account exists."""
    address = email.strip().lower()[:254]
    trail = Trail("sign-in", source_ip, request_id)
    if is_locked(session, email=address, source_ip=source_ip):
        audit_login(session, trail, agent=address, failure=SignInLocked.message_key)
        raise SignInLocked()
    account = session.scalars(select(UserAccount).where(UserAccount.email == address)).one_or_none()
    stored = account.password_hash if account is not None else None
    good = len(password) <= MAX_PASSWORD and verify_secret(stored, password)
    if account is None or not good or not account.active:
        session.add(LoginFailure(account_hash=account_hash(address), source_ip=_ip(source_ip)))
        audit_login(session, trail, agent=address, failure=SignInFailed.message_key)
        session.flush()
        raise SignInFailed()
    audit_login(session, trail, caller=person_caller(session, account))
    return account


# --- housekeeping -----------------------------------------------------------------------


def purge_expired(session: Session, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Forget what no longer protects anything: assertion ids past their expiry (a replay
    would now fail on `exp`), spent or expired codes, failures older than the window."""
    instant = now or utcnow()
    window = dt.timedelta(seconds=get_settings().login_failure_window)
    statements = {
        "used_assertion": delete(UsedAssertion).where(UsedAssertion.expires_at < instant),
        "authorization_code": delete(AuthorizationCode).where(
            or_(AuthorizationCode.expires_at < instant, AuthorizationCode.used.is_(True))
        ),
        "login_failure": delete(LoginFailure).where(LoginFailure.at < instant - window),
    }
    counts = {}
    for table, statement in statements.items():
        result = session.execute(statement.execution_options(synchronize_session=False))
        counts[table] = cast(CursorResult[Any], result).rowcount
    return counts
