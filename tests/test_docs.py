"""The API reference is public and lets a person sign in with PKCE."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_openapi_offers_smart_sign_in(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schemes = response.json()["components"]["securitySchemes"]
    flow = schemes["smart"]["flows"]["authorizationCode"]
    assert flow["authorizationUrl"].endswith("/auth/authorize")
    assert flow["tokenUrl"].endswith("/auth/token")


def test_docs_page_uses_pkce(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert '"usePkceWithAuthorizationCodeGrant": true' in response.text
    assert "puente-docs" in response.text
