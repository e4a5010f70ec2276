"""Hospital systems get tokens: SMART Backend Services (private_key_jwt) and HTTP Basic."""

from __future__ import annotations

import base64

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.audit.models import AuditEntry
from puente.auth.jwks import ASSERTION_TYPE
from puente.auth.models import UsedAssertion
from puente.db import session_factory, unit_of_work
from puente.settings import get_settings
from tests.factories import SystemKeys, add_system_with_key, client_assertion, private_key
from translation.i18n import gettext


@pytest.fixture
def rs384(client: TestClient) -> SystemKeys:
    with unit_of_work() as session:
        return add_system_with_key(session, code="hgcj", alg="RS384")


@pytest.fixture
def es384(client: TestClient) -> SystemKeys:
    with unit_of_work() as session:
        return add_system_with_key(session, code="umcep", alg="ES384")


def _backend(
    client: TestClient, assertion: str, headers: dict[str, str] | None = None, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": "system/*.rs",
        **extra,
    }
    response: httpx.Response = client.post("/auth/token", data=data, headers=headers or {})
    return response


def _claims_of(access_token: str) -> dict[str, object]:
    settings = get_settings()
    claims: dict[str, object] = jwt.decode(
        access_token, settings.secret_key, algorithms=["HS256"], audience=settings.fhir_base_url
    )
    return claims


def _refused(
    response: httpx.Response, error: str, key: str, status: int = 400, **params: str
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {"error": error, "error_description": gettext("en_US", key, **params)}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("fixture", ["rs384", "es384"])
def test_signed_assertion_gets_a_system_token(
    client: TestClient, request: pytest.FixtureRequest, fixture: str
) -> None:
    keys: SystemKeys = request.getfixturevalue(fixture)
    response = _backend(client, client_assertion(keys), purpose_of_use="PUBHLTH")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "system/*.rs"
    assert body["expires_in"] == get_settings().access_token_ttl
    assert "fhirUser" not in body
    assert "patient" not in body
    claims = _claims_of(body["access_token"])
    assert claims["role"] == "system"
    assert claims["sub"] == keys.client_id
    assert claims["org"] == keys.code
    assert claims["country"] == ("MX" if keys.code == "hgcj" else "US")
    assert claims["aud"] == "http://testserver/fhir"
    assert claims["purpose_of_use"] == "PUBHLTH"
    works = client.get(
        "/fhir/Organization", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert works.status_code == 200


def test_wrong_grant_type(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, client_assertion(rs384), grant_type="password")
    _refused(response, "unsupported_grant_type", "auth.grant_type_unsupported")


def test_missing_grant_type(client: TestClient) -> None:
    response = client.post("/auth/token", data={"scope": "system/*.rs"})
    _refused(response, "invalid_request", "auth.parameter_missing", name="grant_type")


def test_json_body_is_an_oauth_error_not_an_outcome(client: TestClient) -> None:
    response = client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_wrong_client_assertion_type(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(
        client, client_assertion(rs384), client_assertion_type="urn:example:saml2-bearer"
    )
    _refused(response, "invalid_client", "auth.assertion_type_unsupported")


def test_issuer_must_be_the_client(client: TestClient, rs384: SystemKeys) -> None:
    assertion = client_assertion(rs384, iss="someone-else")
    response = _backend(client, assertion, client_id=rs384.client_id)
    _refused(response, "invalid_client", "auth.assertion_issuer")


def test_subject_must_be_the_client(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, client_assertion(rs384, sub="someone-else"))
    _refused(response, "invalid_client", "auth.assertion_issuer")


def test_unknown_issuer_is_an_unknown_client(client: TestClient, rs384: SystemKeys) -> None:
    assertion = client_assertion(rs384, iss="nobody-client", sub="nobody-client")
    _refused(_backend(client, assertion), "invalid_client", "auth.client_authentication_failed")


def test_audience_must_be_the_token_endpoint(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, client_assertion(rs384, aud="http://testserver/fhir"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"] == gettext(
        "en_US", "auth.assertion_audience", token_url="http://testserver/auth/token"
    )


def test_expiry_more_than_five_minutes_ahead(client: TestClient, rs384: SystemKeys) -> None:
    _refused(
        _backend(client, client_assertion(rs384, exp_in=301 + 60)),
        "invalid_client",
        "auth.assertion_lifetime",
    )
    assert _backend(client, client_assertion(rs384, exp_in=290)).status_code == 200


def test_expired_assertion(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, client_assertion(rs384, exp_in=-30))
    _refused(response, "invalid_client", "auth.assertion_expired")


def test_reused_jti_is_refused(client: TestClient, rs384: SystemKeys) -> None:
    first = _backend(client, client_assertion(rs384, jti="same-jti"))
    assert first.status_code == 200
    second = _backend(client, client_assertion(rs384, jti="same-jti"))
    _refused(second, "invalid_client", "auth.assertion_replayed")
    with session_factory()() as session:
        rows = session.scalars(select(UsedAssertion)).all()
    assert [(r.client_id, r.jti) for r in rows] == [(rs384.client_id, "same-jti")]


def test_identical_assertion_replayed(client: TestClient, rs384: SystemKeys) -> None:
    assertion = client_assertion(rs384)
    assert _backend(client, assertion).status_code == 200
    _refused(_backend(client, assertion), "invalid_client", "auth.assertion_replayed")


def test_kid_not_in_the_jwks(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, client_assertion(rs384, kid="not-registered"))
    _refused(response, "invalid_client", "auth.assertion_key_unknown")


def test_signed_by_another_key_with_the_registered_kid(
    client: TestClient, rs384: SystemKeys
) -> None:
    response = _backend(client, client_assertion(rs384, key=private_key("RS384")))
    _refused(response, "invalid_client", "auth.assertion_signature")


def test_another_systems_key_does_not_open_this_one(
    client: TestClient, rs384: SystemKeys, es384: SystemKeys
) -> None:
    borrowed = client_assertion(rs384, key=es384.private_key, alg="ES384", kid=es384.kid)
    _refused(_backend(client, borrowed), "invalid_client", "auth.assertion_key_unknown")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "RS256", "none"])
def test_only_rs384_and_es384_are_accepted(client: TestClient, rs384: SystemKeys, alg: str) -> None:
    if alg.startswith("HS"):
        assertion = client_assertion(rs384, key=rs384.secret * 2, alg=alg)
    elif alg == "none":
        assertion = jwt.encode(
            jwt.decode(client_assertion(rs384), options={"verify_signature": False}),
            "",
            algorithm="none",
            headers={"kid": rs384.kid},
        )
    else:
        assertion = client_assertion(rs384, alg=alg)
    _refused(_backend(client, assertion), "invalid_client", "auth.assertion_algorithm")


def test_malformed_assertion(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, "not.a.jwt", client_id=rs384.client_id)
    _refused(response, "invalid_client", "auth.assertion_malformed")


def test_system_without_jwks_cannot_use_assertions(client: TestClient) -> None:
    from puente.auth import service

    with unit_of_work() as session:
        system, _secret = service.add_system(session, code="basic", name="Basic", country="US")
        client_id = system.client_id
    keys = SystemKeys("basic", client_id, "", private_key("RS384"), "k1", "RS384")
    _refused(
        _backend(client, client_assertion(keys)), "invalid_client", "auth.assertion_key_unknown"
    )


def test_error_description_in_spanish(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(
        client, client_assertion(rs384, kid="nope"), headers={"Accept-Language": "es-MX"}
    )
    description = response.json()["error_description"]
    # RFC 6749 section 5.2 keeps error_description to printable ASCII: accents folded.
    assert (
        description
        == "La clave que firmo la asercion del cliente (kid) no esta registrada para este cliente."
    )
    assert description.isascii()


def test_unknown_purpose_of_use(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, client_assertion(rs384), purpose_of_use="MARKETING")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "TREAT" in response.json()["error_description"]


def test_scope_outside_the_role(client: TestClient, rs384: SystemKeys) -> None:
    response = _backend(client, client_assertion(rs384), scope="user/*.rs")
    _refused(response, "invalid_scope", "auth.scope_invalid")


def test_repeated_parameter(client: TestClient, rs384: SystemKeys) -> None:
    body = (
        "grant_type=client_credentials&scope=system/*.rs&scope=system/*.cruds"
        f"&client_assertion_type={ASSERTION_TYPE}&client_assertion={client_assertion(rs384)}"
    )
    response = client.post(
        "/auth/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _refused(response, "invalid_request", "auth.parameter_repeated", name="scope")


# --- client_secret_basic -----------------------------------------------------------------


def test_basic_with_the_right_secret(client: TestClient, rs384: SystemKeys) -> None:
    response = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Organization.rs"},
        auth=(rs384.client_id, rs384.secret),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "system/Organization.rs"
    assert _claims_of(response.json()["access_token"])["org"] == "hgcj"


def test_basic_with_a_wrong_secret(client: TestClient, rs384: SystemKeys) -> None:
    wrong = rs384.secret[:-2] + "xx"
    response = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(rs384.client_id, wrong),
    )
    _refused(response, "invalid_client", "auth.client_authentication_failed", status=401)
    assert response.headers["www-authenticate"].startswith("Basic")
    assert wrong not in response.text
    assert rs384.secret not in response.text


@pytest.mark.parametrize(
    "header", ["Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"]
)
def test_malformed_authorization_header(client: TestClient, header: str) -> None:
    response = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": header},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_no_client_authentication(client: TestClient) -> None:
    response = client.post("/auth/token", data={"grant_type": "client_credentials"})
    _refused(response, "invalid_client", "auth.client_auth_method_unsupported", status=401)


def test_two_authentication_methods(client: TestClient, rs384: SystemKeys) -> None:
    response = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(rs384),
        },
        auth=(rs384.client_id, rs384.secret),
    )
    _refused(response, "invalid_request", "auth.client_auth_multiple")


def test_every_attempt_is_audited_and_no_secret_is_kept(
    client: TestClient, rs384: SystemKeys
) -> None:
    good = _backend(client, client_assertion(rs384))
    bad = client.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(rs384.client_id, "wrong-secret"),
    )
    assert (good.status_code, bad.status_code) == (200, 401)
    with session_factory()() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.event_type == "login").order_by(AuditEntry.id)
        ).all()
    assert [(r.subtype, r.outcome, r.agent) for r in rows] == [
        ("client-credentials", 0, rs384.client_id),
        ("client-credentials", 4, rs384.client_id),
    ]
    assert rows[0].org_code == "hgcj"
    assert rows[0].agent_role == "system"
    assert rows[1].outcome_detail == "auth.client_authentication_failed"
    assert rows[0].source_ip == "testclient"
    for row in rows:
        assert "wrong-secret" not in repr(vars(row))
        assert rs384.secret not in repr(vars(row))
