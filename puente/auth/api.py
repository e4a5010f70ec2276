"""OAuth2 endpoints: token (client credentials, authorization code), authorize, login.

These answer in OAuth's words, not FHIR's: the token endpoint's errors are RFC 6749
section 5.2 JSON, the browser flow gets HTML pages. Refusals are returned, not raised, so
the request's transaction still commits the audit rows and failed attempts they record.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

from puente.auth import grants, pages, service
from puente.auth.errors import (
    InvalidClient,
    InvalidRequest,
    OAuthError,
    SignInFailed,
    SignInLocked,
    UnknownApp,
    UnsupportedGrantType,
)
from puente.context import RequestContext
from puente.settings import get_settings
from puente.web import ContextDep, SessionDep, TransactionalRoute
from translation.i18n import N_, gettext, match_locale

router = APIRouter(prefix="/auth", route_class=TransactionalRoute, tags=["Authorization"])

# RFC 6749 section 5.1: token responses, and anything carrying a code, are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class FormFields:
    values: dict[str, str]
    repeated: tuple[str, ...] = ()

    def get(self, name: str) -> str:
        return self.values.get(name, "")


async def read_form(request: Request) -> FormFields:
    """The form's fields; a field sent twice is noted (RFC 6749 section 3.1 forbids it),
    and an unreadable body reads as an empty form rather than as an error page."""
    try:
        form = await request.form()
    except HTTPException:
        return FormFields({})
    values: dict[str, str] = {}
    repeated: list[str] = []
    for name, value in form.multi_items():
        if name in values:
            repeated.append(name)
        values[name] = value if isinstance(value, str) else ""
    return FormFields(values, tuple(repeated))


FormDep = Annotated[FormFields, Depends(read_form)]


def _description(locale: str, exc: OAuthError) -> str:
    """RFC 6749 section 5.2 limits error_description to printable ASCII without `"` and
    `\\`: accents are folded (`autenticación` -> `autenticacion`), the words stay Spanish."""
    issue = exc.issues[0]
    text = unicodedata.normalize("NFKD", gettext(locale, issue.message_key, **issue.params))
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


def _oauth_error(locale: str, exc: OAuthError) -> JSONResponse:
    basic = isinstance(exc, InvalidClient) and exc.basic
    return JSONResponse(
        {"error": exc.error, "error_description": _description(locale, exc)},
        status_code=401 if basic else exc.status_code,
        headers={**exc.headers, **NO_STORE},
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 section 2.3.1): both parts form-encoded, then Base64."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient(N_("auth.client_auth_method_unsupported"), basic=True)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient(basic=True) from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise InvalidClient(basic=True)
    return unquote_plus(client_id), unquote_plus(secret)


def _grant(
    request: Request, session: SessionDep, ctx: RequestContext, form: FormFields
) -> grants.TokenGrant:
    if form.repeated:
        raise InvalidRequest(N_("auth.parameter_repeated"), name=form.repeated[0][:64])
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest(N_("auth.parameter_missing"), name="grant_type")
    if grant_type == "client_credentials":
        return grants.client_credentials_grant(
            session,
            basic=_basic_credentials(request.headers.get("authorization")),
            client_id=form.get("client_id") or None,
            client_assertion_type=form.get("client_assertion_type") or None,
            client_assertion=form.get("client_assertion") or None,
            scope=form.get("scope"),
            purpose_of_use=form.get("purpose_of_use") or None,
            source_ip=ctx.source_ip,
            request_id=ctx.request_id,
        )
    if grant_type == "authorization_code":
        return grants.authorization_code_grant(
            session,
            code=form.get("code"),
            redirect_uri=form.get("redirect_uri"),
            client_id=form.get("client_id"),
            code_verifier=form.get("code_verifier"),
            purpose_of_use=form.get("purpose_of_use") or None,
            source_ip=ctx.source_ip,
            request_id=ctx.request_id,
        )
    raise UnsupportedGrantType()


@router.post("/token", summary="Token endpoint (client_credentials, authorization_code)")
def token(request: Request, session: SessionDep, ctx: ContextDep, form: FormDep) -> Response:
    try:
        issued = _grant(request, session, ctx, form)
    except OAuthError as exc:
        return _oauth_error(ctx.locale, exc)
    return JSONResponse(issued.response(), headers=NO_STORE)


def _page_locale(ui_locales: str, fallback: str) -> str:
    """OpenID Connect's `ui_locales` (space-separated tags, preferred first), else the
    language negotiated from Accept-Language."""
    for tag in ui_locales.split():
        found = match_locale(tag)
        if found:
            return found
    return fallback


def _with_query(uri: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(uri)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _redirect(uri: str, params: list[tuple[str, str]]) -> RedirectResponse:
    headers = {**NO_STORE, "Referrer-Policy": "no-referrer"}
    return RedirectResponse(_with_query(uri, params), status_code=303, headers=headers)


def _redirect_error(
    auth: grants.AuthorizationRequest, exc: OAuthError, locale: str
) -> RedirectResponse:
    """RFC 6749 section 4.1.2.1: once the redirect_uri is known good, errors go back to
    the app, with its state."""
    params = [("error", exc.error), ("error_description", _description(locale, exc))]
    if auth.state and len(auth.state) <= grants.MAX_STATE:
        params.append(("state", auth.state))
    return _redirect(auth.redirect_uri, params)


@router.get("/authorize", summary="Authorization endpoint (code + PKCE S256): sign-in page")
def authorize(request: Request, session: SessionDep, ctx: ContextDep) -> Response:
    locale = _page_locale(request.query_params.get("ui_locales", ""), ctx.locale)
    auth = grants.AuthorizationRequest.from_params(request.query_params)
    try:
        app = grants.check_authorization_request(session, request=auth)
    except UnknownApp as exc:
        return pages.error_page(locale, exc.issues[0].message_key)
    except OAuthError as exc:
        return _redirect_error(auth, exc, locale)
    return pages.signin_page(
        locale, app_name=app.name, params=auth.as_params(), redirect_uri=auth.redirect_uri
    )


def _same_origin(request: Request) -> bool:
    """A sign-in posted from another site's page is refused (login CSRF); browsers send
    Origin on every form post, other clients may omit it."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {
        get_settings().base_url.rstrip("/"),
        f"{request.url.scheme}://{request.url.netloc}",
    }
    return origin.rstrip("/") in own


@router.post("/login", summary="Sign-in form: on success, back to the app with a code")
def login(request: Request, session: SessionDep, ctx: ContextDep, form: FormDep) -> Response:
    locale = _page_locale(form.get("ui_locales"), ctx.locale)
    if not _same_origin(request):
        return pages.error_page(locale, N_("auth.cross_site_sign_in"), status_code=403)
    auth = grants.AuthorizationRequest.from_params(form.values)
    try:
        app = grants.check_authorization_request(session, request=auth)
    except UnknownApp as exc:
        return pages.error_page(locale, exc.issues[0].message_key)
    except OAuthError as exc:
        return _redirect_error(auth, exc, locale)
    email = form.get("email")

    def again(error_key: str, status_code: int, headers: dict[str, str] | None = None) -> Response:
        return pages.signin_page(
            locale,
            app_name=app.name,
            params=auth.as_params(),
            redirect_uri=auth.redirect_uri,
            status_code=status_code,
            email=email[:254],
            error_key=error_key,
            headers=headers,
        )

    try:
        account = service.sign_in(
            session,
            email=email,
            password=form.get("password"),
            source_ip=ctx.source_ip,
            request_id=ctx.request_id,
        )
    except SignInLocked as exc:
        retry = {"Retry-After": str(get_settings().login_failure_window)}
        return again(exc.issues[0].message_key, 429, retry)
    except SignInFailed as exc:
        # 200, not 401: RFC 9110 section 15.5.2 makes a 401 carry a WWW-Authenticate
        # challenge, and no HTTP scheme describes an HTML form.
        return again(exc.issues[0].message_key, 200)
    try:
        code = grants.create_authorization_code(session, app=app, account=account, request=auth)
    except OAuthError as exc:
        return _redirect_error(auth, exc, locale)
    return _redirect(auth.redirect_uri, [("code", code), ("state", auth.state)])
