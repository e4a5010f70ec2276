"""People sign in through a SMART app: authorize page, login form, code + PKCE, token."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from puente.db import unit_of_work, utcnow
from puente.settings import get_settings
from tests.factories import (
    PASSWORD,
    REDIRECT_URI,
    add_app,
    add_person,
    add_system_with_key,
    organizations,
    pkce_pair,
)
from translation.i18n import gettext

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@dataclass(frozen=True)
class Setup:
    client_id: str
    email: str
    verifier: str
    challenge: str


@pytest.fixture
def setup(client: TestClient) -> Setup:
    with unit_of_work() as session:
        organizations(session)
        add_system_with_key(session, code="hgcj")
        add_system_with_key(session, code="umcep", alg="ES384")
        app = add_app(session, name="Mi Salud <Juárez>")
        person = add_person(session)
        add_person(
            session,
            email="Paciente@Example.MX",
            role="patient",
            org="hgcj",
            subject="Patient/p-17",
            locale="es_MX",
        )
        client_id, email = app.client_id, person.email
    verifier, challenge = pkce_pair()
    return Setup(client_id, email, verifier, challenge)


def _authorize_params(setup: Setup, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": setup.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid fhirUser user/*.rs",
        "state": "xyz-state",
        "code_challenge": setup.challenge,
        "code_challenge_method": "S256",
        "aud": "http://testserver/fhir",
    }
    return {**params, **overrides}


def _hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page)}


def _sign_in(
    client: TestClient,
    setup: Setup,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
    **overrides: str,
) -> httpx.Response:
    page = client.get(
        "/auth/authorize", params=_authorize_params(setup, **overrides), headers=headers or {}
    )
    assert page.status_code == 200, page.text
    form = {**_hidden_fields(page.text), "email": email or setup.email, "password": password}
    response: httpx.Response = client.post(
        "/auth/login", data=form, headers=headers or {}, follow_redirects=False
    )
    return response


def _code_from(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["xyz-state"]
    return query["code"][0]


def _redeem(client: TestClient, setup: Setup, code: str, **overrides: str) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": setup.client_id,
        "code_verifier": setup.verifier,
        **overrides,
    }
    response: httpx.Response = client.post("/auth/token", data=data)
    return response


def test_sign_in_page_in_english_and_spanish(client: TestClient, setup: Setup) -> None:
    params = _authorize_params(setup)
    english = client.get("/auth/authorize", params=params, headers={"Accept-Language": "en"})
    spanish = client.get("/auth/authorize", params=params, headers={"Accept-Language": "es"})
    chosen = client.get(
        "/auth/authorize",
        params={**params, "ui_locales": "es-MX en"},
        headers={"Accept-Language": "en"},
    )
    for page in (english, spanish, chosen):
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="en-US">' in english.text
    assert '<html lang="es-MX">' in spanish.text
    assert '<html lang="es-MX">' in chosen.text
    assert gettext("en_US", "signin.password") in english.text
    assert gettext("es_MX", "signin.password") in spanish.text
    assert gettext("es_MX", "signin.password") not in english.text
    assert '<label for="email">' in english.text
    assert 'id="email"' in english.text
    # the app's name is shown escaped, never as markup
    assert "Mi Salud &lt;Juárez&gt;" in english.text
    assert "<Juárez>" not in english.text
    # the other language is one link away, with the same request
    assert 'hreflang="es-MX"' in english.text
    assert "ui_locales=es-MX" in english.text


def test_sign_in_page_cannot_be_framed_or_cached(client: TestClient, setup: Setup) -> None:
    page = client.get("/auth/authorize", params=_authorize_params(setup))
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://app.example" in csp
    assert "script-src" not in csp
    assert "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    # the one inline style is the one the policy allows, so browsers apply it
    style = re.search(r"<style>(.*?)</style>", page.text, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp


def test_language_link_opens_the_same_request_in_the_other_language(
    client: TestClient, setup: Setup
) -> None:
    english = client.get("/auth/authorize", params=_authorize_params(setup))
    link = re.search(r'<a href="(authorize\?[^"]+)" hreflang="es-MX"', english.text)
    assert link is not None
    spanish = client.get("/auth/" + html.unescape(link.group(1)))
    assert spanish.status_code == 200
    assert '<html lang="es-MX">' in spanish.text
    assert _hidden_fields(spanish.text) == {
        **_hidden_fields(english.text),
        "ui_locales": "es-MX",
    }


def test_pkce_flow_end_to_end(client: TestClient, setup: Setup) -> None:
    code = _code_from(_sign_in(client, setup))
    response = _redeem(client, setup, code)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["fhirUser"] == "Practitioner/dr-garza"
    assert body["scope"] == "user/*.rs"
    assert "patient" not in body
    settings = get_settings()
    claims = jwt.decode(
        body["access_token"],
        settings.secret_key,
        algorithms=["HS256"],
        audience=settings.fhir_base_url,
    )
    assert (claims["role"], claims["org"], claims["country"]) == ("clinician", "hgcj", "MX")
    assert claims["fhirUser"] == "Practitioner/dr-garza"
    assert claims["purpose_of_use"] == "TREAT"

    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    organizations = client.get("/fhir/Organization", headers=bearer)
    assert organizations.status_code == 200
    assert organizations.json()["total"] == 4

    again = _redeem(client, setup, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_patient_gets_patient_context_and_their_language(client: TestClient, setup: Setup) -> None:
    code = _code_from(
        _sign_in(client, setup, email="paciente@example.mx", scope="launch/patient patient/*.rs")
    )
    response = _redeem(client, setup, code, purpose_of_use="PATRQT")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["patient"] == "p-17"
    assert body["fhirUser"] == "Patient/p-17"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["locale"] == "es_MX"
    assert claims["purpose_of_use"] == "PATRQT"
    assert claims["role"] == "patient"


def test_wrong_verifier_is_refused_and_spends_the_code(client: TestClient, setup: Setup) -> None:
    code = _code_from(_sign_in(client, setup))
    other_verifier, _ = pkce_pair()
    wrong = _redeem(client, setup, code, code_verifier=other_verifier)
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": gettext("en_US", "auth.code_verifier_mismatch"),
    }
    right_but_late = _redeem(client, setup, code)
    assert right_but_late.json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_redirect_uri_and_app(client: TestClient, setup: Setup) -> None:
    code = _code_from(_sign_in(client, setup))
    moved = _redeem(client, setup, code, redirect_uri="https://app.example/other")
    assert moved.json()["error"] == "invalid_grant"

    code = _code_from(_sign_in(client, setup))
    with unit_of_work() as session:
        other = add_app(session, name="Other app")
        other_id = other.client_id
    stolen = _redeem(client, setup, code, client_id=other_id)
    assert stolen.json()["error"] == "invalid_grant"


def test_expired_code_is_refused(
    client: TestClient, setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _code_from(_sign_in(client, setup))
    later = utcnow() + dt.timedelta(seconds=get_settings().auth_code_ttl + 1)
    monkeypatch.setattr("puente.auth.grants.utcnow", lambda: later)
    assert _redeem(client, setup, code).json()["error"] == "invalid_grant"


def test_unregistered_redirect_uri_gets_a_page_not_a_redirect(
    client: TestClient, setup: Setup
) -> None:
    params = _authorize_params(setup, redirect_uri="https://evil.example/steal")
    response = client.get(
        "/auth/authorize",
        params=params,
        headers={"Accept-Language": "es"},
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert html.escape(gettext("es_MX", "auth.redirect_uri_unregistered")) in response.text
    assert "evil.example" not in response.text


def test_unknown_client_gets_a_page_not_a_redirect(client: TestClient, setup: Setup) -> None:
    params = _authorize_params(setup, client_id="app-unknown")
    response = client.get("/auth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert gettext("en_US", "auth.app_unknown") in response.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"aud": "https://other.example/fhir"}, "invalid_request"),
        ({"scope": "user/Patient.xyz"}, "invalid_scope"),
    ],
)
def test_bad_authorization_request_goes_back_to_the_app(
    client: TestClient, setup: Setup, overrides: dict[str, str], error: str
) -> None:
    response = client.get(
        "/auth/authorize", params=_authorize_params(setup, **overrides), follow_redirects=False
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == [error]
    assert query["state"] == ["xyz-state"]
    assert "code" not in query


def test_plain_challenge_is_refused_at_login_too(client: TestClient, setup: Setup) -> None:
    page = client.get("/auth/authorize", params=_authorize_params(setup))
    form = {
        **_hidden_fields(page.text),
        "code_challenge_method": "plain",
        "email": setup.email,
        "password": PASSWORD,
    }
    response = client.post("/auth/login", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_request"]


def test_scope_the_role_cannot_hold_is_refused_after_sign_in(
    client: TestClient, setup: Setup
) -> None:
    response = _sign_in(client, setup, scope="system/*.cruds")
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_scope"]
    assert "code" not in query


def test_wrong_password_shows_the_page_again_with_an_error(
    client: TestClient, setup: Setup
) -> None:
    response = _sign_in(
        client,
        setup,
        email='"><script>alert(1)</script>',
        password="nope",
        headers={"Accept-Language": "es"},
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert 'role="alert"' in response.text
    assert gettext("es_MX", "auth.sign_in_failed") in response.text
    assert "<script>" not in response.text
    assert "&#34;&gt;&lt;script&gt;" in response.text
    # the form still carries the authorization request
    assert _hidden_fields(response.text)["state"] == "xyz-state"


def test_login_posted_from_another_site_is_refused(client: TestClient, setup: Setup) -> None:
    response = _sign_in(client, setup, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "location" not in response.headers
    assert gettext("en_US", "auth.cross_site_sign_in") in response.text
    same_site = _sign_in(client, setup, headers={"Origin": "http://testserver"})
    assert same_site.status_code == 303


def test_missing_code_verifier(client: TestClient, setup: Setup) -> None:
    code = _code_from(_sign_in(client, setup))
    response = _redeem(client, setup, code, code_verifier="")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
