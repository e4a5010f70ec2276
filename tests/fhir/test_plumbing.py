"""The FHIR REST plumbing every resource type relies on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.responses import StreamingResponse

from exchange import service
from puente.logs import JSONFormatter
from puente.middleware import PuenteLayer
from tests.factories import bearer


def test_no_token_is_401_in_the_callers_language(client: TestClient) -> None:
    spanish = client.get("/fhir/Patient", headers={"Accept-Language": "es-MX,es;q=0.9"})
    english = client.get("/fhir/Patient", headers={"Accept-Language": "en-US"})
    assert spanish.status_code == english.status_code == 401
    assert spanish.headers["www-authenticate"].startswith("Bearer")
    es_text = spanish.json()["issue"][0]["details"]["text"]
    en_text = english.json()["issue"][0]["details"]["text"]
    assert "autenticación" in es_text
    assert "Authentication required" in en_text
    assert spanish.headers["content-language"] == "es-MX"


def test_authentication_comes_before_routing(client: TestClient) -> None:
    unknown_type = client.get("/fhir/NoSuchType/1")
    assert unknown_type.status_code == 401
    base = client.post("/fhir", json={"resourceType": "Bundle"})
    assert base.status_code == 401


def test_unknown_type_and_route_are_404_outcomes(client: TestClient) -> None:
    unknown = client.get("/fhir/Spaceship", headers=bearer())
    assert unknown.status_code == 404
    assert unknown.json()["issue"][0]["code"] == "not-found"
    nowhere = client.get("/fhir/Organization/x/y/z", headers=bearer())
    assert nowhere.status_code == 404
    assert nowhere.json()["resourceType"] == "OperationOutcome"
    outside = client.get("/no/such/page")
    assert outside.status_code == 404
    assert outside.json()["resourceType"] == "OperationOutcome"


def test_unsupported_method_is_405_outcome(client: TestClient) -> None:
    response = client.delete("/fhir/metadata")
    assert response.status_code == 405
    assert response.json()["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({}, {}, 200),
        ({"Accept": "application/fhir+json"}, {}, 200),
        ({"Accept": "application/json"}, {}, 200),
        ({"Accept": "*/*"}, {}, 200),
        ({"Accept": "text/html, application/fhir+json;q=0.5"}, {}, 200),
        ({"Accept": "application/fhir+xml"}, {}, 406),
        ({"Accept": "application/xml, text/xml"}, {}, 406),
        ({"Accept": "application/fhir+json;q=0"}, {}, 406),
        ({}, {"_format": "json"}, 200),
        ({}, {"_format": "application/fhir+json"}, 200),
        ({"Accept": "application/fhir+xml"}, {"_format": "json"}, 200),
        ({}, {"_format": "xml"}, 406),
    ],
)
def test_content_negotiation(
    client: TestClient, headers: dict[str, str], params: dict[str, str], status: int
) -> None:
    response = client.get("/fhir/metadata", headers=headers, params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/fhir+json")
    if status == 406:
        assert response.json()["issue"][0]["code"] == "not-supported"


def test_xml_body_is_415_and_never_parsed(client: TestClient) -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa">]><a>&a;</a>'
    response = client.post(
        "/fhir/Organization/_search",
        content=bomb,
        headers={**bearer(), "Content-Type": "application/fhir+xml"},
    )
    assert response.status_code == 415
    assert "application/fhir+xml" in response.json()["issue"][0]["details"]["text"]


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/fhir/metadata", headers={"X-Request-ID": "abc12345-trace"})
    assert given.headers["x-request-id"] == "abc12345-trace"
    unsafe = client.get("/fhir/metadata", headers={"X-Request-ID": "<script>"})
    assert unsafe.headers["x-request-id"] != "<script>"
    assert len(unsafe.headers["x-request-id"]) == 32


def test_a_500_carries_the_request_id_and_no_exception_text(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("José Luis Hernández HELJ800101HCHRPS09")

    monkeypatch.setattr(service, "read", explode)
    response = client.get(
        "/fhir/Organization/hgcj", headers={**bearer(), "X-Request-ID": "req-500-test"}
    )
    assert response.status_code == 500
    body = response.text
    assert "Hernández" not in body
    assert "HELJ800101HCHRPS09" not in body
    assert "RuntimeError" not in body
    outcome = response.json()
    assert outcome["issue"][0]["code"] == "exception"
    assert "req-500-test" in outcome["issue"][0]["details"]["text"]


def test_validation_errors_name_the_field_not_the_value(client: TestClient) -> None:
    response = client.get("/fhir/Organization", params={"_count": "many"}, headers=bearer())
    assert response.status_code == 400
    assert "many" not in response.text
    assert "_count" in response.json()["issue"][0]["details"]["text"]


def test_smart_configuration_is_public(client: TestClient) -> None:
    response = client.get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    config = response.json()
    assert config["token_endpoint"].endswith("/auth/token")
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "permission-v2" in config["capabilities"]


def test_a_persons_stored_language_wins(client: TestClient) -> None:
    headers = {
        **bearer("clinician", "umcep", fhir_user="Practitioner/umcep-1", locale="es_MX"),
        "Accept-Language": "en-US",
    }
    response = client.get("/fhir/Organization/none", headers=headers)
    assert response.status_code == 404
    assert response.json()["issue"][0]["details"]["text"].startswith("No se encontró")


def test_a_failure_after_the_response_began_is_logged_without_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"resourceType": "Bundle", "entry": ['
        raise RuntimeError("José Luis Hernández HELJ800101HCHRPS09")

    app = FastAPI()
    app.add_api_route("/stream", lambda: StreamingResponse(body()))
    app.add_middleware(PuenteLayer)
    with caplog.at_level(logging.ERROR, logger="puente.error"), TestClient(app) as http:
        response = http.get("/stream", headers={"X-Request-ID": "req-cut-short"})
    # The status and the first part had left: the client sees a cut-off body, not a 500.
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-cut-short"
    (record,) = [r for r in caplog.records if r.name == "puente.error"]
    line = JSONFormatter().format(record)
    assert json.loads(line)["event"] == "failure_after_response_began"
    assert json.loads(line)["request_id"] == "req-cut-short"
    assert "Hernández" not in line
    assert "HELJ800101HCHRPS09" not in line
