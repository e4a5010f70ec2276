"""What a FHIR call with a missing, forged or insufficient token gets: 401 or 403."""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest
from fastapi.testclient import TestClient

from puente.auth import tokens
from puente.db import unit_of_work
from puente.settings import get_settings
from tests.factories import add_system_with_key, organizations, token
from translation.i18n import gettext


def _claims(**overrides: object) -> dict[str, object]:
    settings = get_settings()
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.base_url,
        "aud": settings.fhir_base_url,
        "sub": "hgcj-client",
        "iat": now,
        "exp": now + 300,
        "role": "system",
        "org": "hgcj",
        "scope": "system/*.cruds",
    }
    return {**claims, **overrides}


def _bad_tokens() -> dict[str, tuple[str, str]]:
    """Each bad token, with the catalog key the 401 names."""
    secret = get_settings().secret_key
    return {
        "expired": (token(ttl=-60), "error.token_expired"),
        "wrong-signature": (
            jwt.encode(_claims(), "another-secret-0123456789abcdef0123456789", "HS256"),
            "error.token_invalid",
        ),
        "alg-none": (jwt.encode(_claims(), "", algorithm="none"), "error.token_invalid"),
        "wrong-audience": (
            jwt.encode(_claims(aud="https://elsewhere.example/fhir"), secret, "HS256"),
            "error.token_audience",
        ),
        "garbage": ("not-a-jwt", "error.token_invalid"),
    }


CASES = ["expired", "wrong-signature", "alg-none", "wrong-audience", "garbage"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("path", ["/fhir/Organization", "/fhir/Nope", "/fhir/Nope/1"])
def test_bad_token_is_401_outcome_even_for_unknown_types(
    client: TestClient, case: str, path: str
) -> None:
    bad, key = _bad_tokens()[case]
    response = client.get(path, headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"
    assert outcome["issue"][0]["details"]["text"] == gettext("en_US", key)


@pytest.mark.parametrize("case", CASES)
def test_401_speaks_the_callers_language(client: TestClient, case: str) -> None:
    bad, key = _bad_tokens()[case]
    spanish = client.get(
        "/fhir/Organization",
        headers={"Authorization": f"Bearer {bad}", "Accept-Language": "es-MX,es;q=0.9"},
    )
    english = client.get(
        "/fhir/Organization",
        headers={"Authorization": f"Bearer {bad}", "Accept-Language": "en-US"},
    )
    assert spanish.status_code == english.status_code == 401
    es_text = spanish.json()["issue"][0]["details"]["text"]
    en_text = english.json()["issue"][0]["details"]["text"]
    assert es_text == gettext("es_MX", key)
    assert en_text == gettext("en_US", key)
    assert es_text != en_text
    assert spanish.headers["content-language"] == "es-MX"


@pytest.mark.parametrize("path", ["/fhir/Organization", "/fhir/Nope"])
@pytest.mark.parametrize("header", [None, "Bearer", "Basic aGdjajpzZWNyZXQ=", "Bearer  "])
def test_no_usable_token_is_401(client: TestClient, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


def test_token_from_the_token_endpoint_is_refused_where_its_scope_does_not_reach(
    client: TestClient,
) -> None:
    with unit_of_work() as session:
        keys = add_system_with_key(session)
        organizations(session)
    issued = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Patient.rs"},
        auth=(keys.client_id, keys.secret),
    )
    assert issued.status_code == 200, issued.text
    assert issued.json()["scope"] == "system/Patient.rs"
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}

    refused = client.get("/fhir/Organization", headers=bearer)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"

    full = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(keys.client_id, keys.secret),
    )
    allowed = client.get(
        "/fhir/Organization", headers={"Authorization": f"Bearer {full.json()['access_token']}"}
    )
    assert allowed.status_code == 200
    assert allowed.json()["total"] == 4  # two countries, two hospitals


def test_an_accepted_token_is_refused_once_it_expires(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token is verified once and then remembered: its expiry still holds."""
    good = {"Authorization": f"Bearer {token(ttl=60)}"}
    assert client.get("/fhir/Organization", headers=good).status_code == 200
    assert client.get("/fhir/Organization", headers=good).status_code == 200
    a_minute_on = time.time() + 61
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: a_minute_on))
    response = client.get("/fhir/Organization", headers=good)
    assert response.status_code == 401
    assert response.json()["issue"][0]["details"]["text"] == gettext("en_US", "error.token_expired")
