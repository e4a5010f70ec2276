"""GET /fhir/metadata: generated from what is registered, valid R4."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhirclient.models.capabilitystatement import CapabilityStatement as ClientCapability

from puente.fhir.registry import REGISTRY


def _statement(client: TestClient) -> dict[str, Any]:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_metadata_is_public_and_r4(client: TestClient) -> None:
    statement = _statement(client)
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert "application/fhir+json" in statement["format"]


def test_validates_with_fhir_resources_r4b(client: TestClient) -> None:
    CapabilityStatement.model_validate(_statement(client))


def test_validates_with_fhirclient_r4_models(client: TestClient) -> None:
    parsed = ClientCapability(_statement(client), strict=True)
    assert parsed.fhirVersion == "4.0.1"


def test_lists_every_registered_type_with_its_search_parameters(client: TestClient) -> None:
    rest = _statement(client)["rest"][0]
    listed = {r["type"]: r for r in rest["resource"]}
    assert set(listed) == set(REGISTRY.resources)
    organization = listed["Organization"]
    assert {i["code"] for i in organization["interaction"]} >= {"read", "create", "delete"}
    names = {p["name"] for p in organization["searchParam"]}
    assert {"name", "identifier", "partof", "_id", "_lastUpdated"} <= names


def test_security_advertises_smart(client: TestClient) -> None:
    security = _statement(client)["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = security["extension"][0]
    urls = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert urls["token"].endswith("/auth/token")
    assert urls["authorize"].endswith("/auth/authorize")


def test_says_unknown_parameters_are_refused(client: TestClient) -> None:
    documentation = _statement(client)["rest"][0]["documentation"]
    assert "handling=lenient" in documentation
