"""Organization through the store: read, vread, search by name, identifier and partof."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from exchange import service
from puente.db import session_factory
from tests.factories import bearer, organizations


def _load(engine: Engine) -> None:
    del engine
    with session_factory()() as session:
        organizations(session)
        session.commit()


def test_read_shows_versioned_meta_and_weak_etag(client: TestClient, engine: Engine) -> None:
    _load(engine)
    response = client.get("/fhir/Organization/hgcj", headers=bearer())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["etag"] == 'W/"1"'
    assert "GMT" in response.headers["last-modified"]
    body = response.json()
    assert body["name"] == "Hospital General de Ciudad Juárez"
    assert body["partOf"] == {"reference": "Organization/mx"}
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["source"] == "urn:puente:source:mx:hgcj"
    assert body["meta"]["lastUpdated"].endswith("Z")


def test_other_side_reads_directory_data(client: TestClient, engine: Engine) -> None:
    _load(engine)
    response = client.get("/fhir/Organization/hgcj", headers=bearer("system", "umcep"))
    assert response.status_code == 200


def test_vread_and_unknown_version(client: TestClient, engine: Engine) -> None:
    _load(engine)
    assert client.get("/fhir/Organization/umcep/_history/1", headers=bearer()).status_code == 200
    missing = client.get("/fhir/Organization/umcep/_history/7", headers=bearer())
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_unknown_id_is_404_outcome(client: TestClient, engine: Engine) -> None:
    _load(engine)
    response = client.get("/fhir/Organization/nope", headers=bearer())
    assert response.status_code == 404
    issue = response.json()["issue"][0]
    assert issue["code"] == "not-found"
    assert "Organization/nope" in issue["details"]["text"]


def _ids(response_json: dict[str, object]) -> set[str]:
    entries = response_json.get("entry", [])
    assert isinstance(entries, list)
    return {e["resource"]["id"] for e in entries}


def test_search_by_name_is_accent_and_case_insensitive(client: TestClient, engine: Engine) -> None:
    _load(engine)
    plain = client.get("/fhir/Organization", params={"name": "HOSPITAL general"}, headers=bearer())
    assert plain.status_code == 200
    assert _ids(plain.json()) == {"hgcj"}
    accented = client.get("/fhir/Organization", params={"name": "Méxi"}, headers=bearer())
    assert _ids(accented.json()) == {"mx"}
    contains = client.get(
        "/fhir/Organization", params={"name:contains": "juarez"}, headers=bearer()
    )
    assert _ids(contains.json()) == {"hgcj"}
    exact = client.get(
        "/fhir/Organization",
        params={"name:exact": "hospital general de ciudad juárez"},
        headers=bearer(),
    )
    assert _ids(exact.json()) == set()


def test_search_by_identifier_and_partof(client: TestClient, engine: Engine) -> None:
    _load(engine)
    by_identifier = client.get(
        "/fhir/Organization", params={"identifier": "urn:puente:system|umcep"}, headers=bearer()
    )
    assert _ids(by_identifier.json()) == {"umcep"}
    code_only = client.get("/fhir/Organization", params={"identifier": "US"}, headers=bearer())
    assert _ids(code_only.json()) == {"us"}
    part_of_mx = client.get("/fhir/Organization", params={"partof": "mx"}, headers=bearer())
    assert _ids(part_of_mx.json()) == {"hgcj"}
    part_of_us = client.get(
        "/fhir/Organization", params={"partof": "Organization/us"}, headers=bearer()
    )
    assert _ids(part_of_us.json()) == {"umcep"}
    either = client.get(
        "/fhir/Organization",
        params={"partof": "Organization/us,Organization/mx"},
        headers=bearer(),
    )
    assert _ids(either.json()) == {"umcep", "hgcj"}


def test_searchset_paging_links_and_total(client: TestClient, engine: Engine) -> None:
    _load(engine)
    first = client.get("/fhir/Organization", params={"_count": "3"}, headers=bearer()).json()
    assert first["type"] == "searchset"
    assert first["total"] == 4
    assert len(first["entry"]) == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "_count=3" in links["self"]
    assert links["self"].count("_count=") == 1
    assert "previous" not in links
    second = client.get(links["next"].replace("http://testserver", ""), headers=bearer()).json()
    assert len(second["entry"]) == 1
    assert {link["relation"] for link in second["link"]} == {"self", "previous"}
    assert _ids(first) | _ids(second) == {"mx", "us", "hgcj", "umcep"}
    counted = client.get("/fhir/Organization", params={"_summary": "count"}, headers=bearer())
    assert counted.json()["total"] == 4
    assert "entry" not in counted.json()


def test_unknown_parameter_is_400_unless_lenient(client: TestClient, engine: Engine) -> None:
    _load(engine)
    strict = client.get("/fhir/Organization", params={"colour": "red"}, headers=bearer())
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["code"] == "not-supported"
    lenient = client.get(
        "/fhir/Organization",
        params={"colour": "red", "name": "hospital"},
        headers={**bearer(), "Prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    bundle = lenient.json()
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    assert "colour" in outcome[0]["resource"]["issue"][0]["details"]["text"]
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert "colour" not in self_link
    assert "name=hospital" in self_link


def test_search_post_form(client: TestClient, engine: Engine) -> None:
    _load(engine)
    response = client.post(
        "/fhir/Organization/_search",
        content="name=university",
        headers={**bearer(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert _ids(response.json()) == {"umcep"}
    wrong = client.post(
        "/fhir/Organization/_search",
        content="<xml/>",
        headers={**bearer(), "Content-Type": "application/xml"},
    )
    assert wrong.status_code == 415


def test_last_updated_and_id_search(client: TestClient, engine: Engine) -> None:
    _load(engine)
    recent = client.get(
        "/fhir/Organization", params={"_lastUpdated": "gt2020-01-01"}, headers=bearer()
    )
    assert recent.json()["total"] == 4
    future = client.get(
        "/fhir/Organization", params={"_lastUpdated": "gt2999-01-01"}, headers=bearer()
    )
    assert future.json()["total"] == 0
    by_id = client.get("/fhir/Organization", params={"_id": "mx,us"}, headers=bearer())
    assert _ids(by_id.json()) == {"mx", "us"}
    bad_date = client.get("/fhir/Organization", params={"_lastUpdated": "soon"}, headers=bearer())
    assert bad_date.status_code == 400


def test_rewrite_without_change_keeps_version(db: Session) -> None:
    organizations(db)
    organizations(db)
    from exchange.models import StoredResource

    stored = db.query(StoredResource).filter_by(res_type="Organization", res_id="hgcj").one()
    assert stored.version == 1
    service.register_hospital_organization(
        db, code="hgcj", name="Hospital General de Cd. Juárez", country="MX"
    )
    db.refresh(stored)
    assert stored.version == 2
