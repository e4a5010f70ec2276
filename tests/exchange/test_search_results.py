"""Result parameters: _include/_revinclude, _sort, _elements, _total, and keyset paging that
stays put while data changes."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from exchange import store
from puente.db import session_factory
from tests.exchange.search_data import ids, load, patient
from tests.factories import bearer


def _get(client: TestClient, path: str, params: Any) -> dict[str, Any]:
    response = client.get(f"/fhir/{path}", params=params, headers=bearer())
    assert response.status_code == 200, (params, response.text)
    body: dict[str, Any] = response.json()
    return body


def _follow(client: TestClient, body: dict[str, Any], relation: str) -> dict[str, Any] | None:
    url = next((link["url"] for link in body["link"] if link["relation"] == relation), None)
    if url is None:
        return None
    response = client.get(url.replace("http://testserver", ""), headers=bearer())
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_include_follows_references_not_counted_in_total(client: TestClient) -> None:
    load()
    body = _get(
        client,
        "Observation",
        {"code": "2339-0", "_include": ["Observation:patient", "Observation:encounter"]},
    )
    assert body["total"] == 1
    assert ids(body) == ["hgcj-obs-glucose"]
    assert sorted(ids(body, "include")) == ["hgcj-1001", "hgcj-enc1"]
    typed = _get(client, "Observation", {"code": "2339-0", "_include": "Observation:*:Encounter"})
    assert ids(typed, "include") == ["hgcj-enc1"]


def test_include_is_deduplicated_and_never_repeats_a_match(client: TestClient) -> None:
    load()
    body = _get(client, "Observation", {"patient": "hgcj-1001", "_include": "Observation:subject"})
    assert sorted(ids(body)) == ["hgcj-obs-a1c", "hgcj-obs-glucose"]
    assert ids(body, "include") == ["hgcj-1001"]
    encounter = _get(
        client, "Encounter", {"_include": ["Encounter:participant", "Encounter:practitioner"]}
    )
    assert ids(encounter, "include") == ["hgcj-dr1"]


def test_revinclude_brings_only_visible_resources(client: TestClient) -> None:
    load()
    body = _get(
        client,
        "Patient",
        {"_id": "hgcj-1001", "_revinclude": ["Provenance:target", "Observation:patient"]},
    )
    assert body["total"] == 1
    # umcep's Provenance also targets Patient/hgcj-1001, but it is the other system's.
    assert sorted(ids(body, "include")) == ["hgcj-obs-a1c", "hgcj-obs-glucose", "hgcj-prov1"]
    other = client.get(
        "/fhir/Provenance",
        params={"_id": "umcep-prov1", "_include": "Provenance:target"},
        headers=bearer("system", "umcep"),
    ).json()
    assert ids(other) == ["umcep-prov1"]
    assert ids(other, "include") == []  # hgcj's Patient is not umcep's to see


def test_include_of_a_wrong_type_or_param_is_400(client: TestClient) -> None:
    load()
    for value in ("Patient:organization", "Observation:code", "Observation", "Nope:subject"):
        response = client.get("/fhir/Observation", params={"_include": value}, headers=bearer())
        assert response.status_code == 400, value
    wrong_target = client.get(
        "/fhir/Patient", params={"_revinclude": "Observation:encounter"}, headers=bearer()
    )
    assert wrong_target.status_code == 400


def test_sort_by_several_keys(client: TestClient) -> None:
    load(
        patient("hgcj-1003", "Núñez Peña", "Ana", "1970-01-01"),
        patient("hgcj-1004", "Álvarez", "Zoe", "2001-07"),
    )
    by_family = _get(client, "Patient", {"_sort": "family,-birthdate"})
    # Álvarez folds to "alvarez"; the two Núñez Peña by birth date, newest first.
    assert ids(by_family) == ["hgcj-1004", "hgcj-1002", "hgcj-1003", "hgcj-1001"]
    by_birth = _get(client, "Patient", {"_sort": "-birthdate"})
    assert ids(by_birth) == ["hgcj-1004", "hgcj-1002", "hgcj-1001", "hgcj-1003"]
    missing_last = _get(client, "Patient", {"_sort": "gender,_id"})
    assert ids(missing_last) == ["hgcj-1002", "hgcj-1001", "hgcj-1003", "hgcj-1004"]
    by_id = _get(client, "Patient", {"_sort": "-_id"})
    assert ids(by_id) == ["hgcj-1004", "hgcj-1003", "hgcj-1002", "hgcj-1001"]
    by_date = _get(client, "Observation", {"_sort": "-date,code"})
    assert ids(by_date) == ["hgcj-obs-a1c", "hgcj-obs-glucose", "hgcj-obs-maria"]
    assert _get(client, "Observation", {"_sort": "-_lastUpdated"})["total"] == 3
    refused = client.get(
        "/fhir/Patient", params={"_sort": "general-practitioner"}, headers=bearer()
    )
    assert refused.status_code == 400


def test_elements_keeps_listed_and_mandatory_elements(client: TestClient) -> None:
    load()
    body = _get(client, "Patient", {"_id": "hgcj-1001", "_elements": "name,birthDate"})
    resource = body["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "name", "birthDate"}
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED",
        "display": "subsetted",
    } in resource["meta"]["tag"]
    assert resource["meta"]["versionId"] == "1"
    self_link = body["link"][0]["url"]
    assert "_elements=name%2CbirthDate" in self_link
    full = client.get("/fhir/Patient/hgcj-1001", headers=bearer()).json()
    assert "tag" not in full["meta"]  # the stored resource is untouched


def test_elements_keeps_mandatory_elements_and_leaves_included_resources_whole(
    client: TestClient,
) -> None:
    """R4 3.1.1.5.9: mandatory elements come back whether listed or not, and "the list of
    elements does not apply to included resources"."""
    load()
    body = _get(
        client,
        "Observation",
        {"code": "2339-0", "_elements": "subject", "_include": "Observation:patient"},
    )
    [match] = [e["resource"] for e in body["entry"] if e["search"]["mode"] == "match"]
    assert set(match) == {"resourceType", "id", "meta", "subject", "status", "code"}
    assert "SUBSETTED" in [t["code"] for t in match["meta"]["tag"]]
    [included] = [e["resource"] for e in body["entry"] if e["search"]["mode"] == "include"]
    full = client.get("/fhir/Patient/hgcj-1001", headers=bearer()).json()
    assert included == full
    assert "tag" not in included["meta"]


def test_total_none_estimate_accurate(client: TestClient) -> None:
    load()
    assert "total" not in _get(client, "Observation", {"_total": "none"})
    assert _get(client, "Observation", {"_total": "estimate"})["total"] == 3
    assert _get(client, "Observation", {"_total": "accurate"})["total"] == 3


def _many(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        patient(f"hgcj-p{n:03d}", "García", f"Paciente {n}", f"19{50 + n % 40}-01-01")
        for n in range(start, start + count)
    ]


def test_paging_is_stable_while_resources_are_added_and_removed(client: TestClient) -> None:
    with session_factory()() as session:
        for resource in _many(10):
            store.put(session, owner="hgcj", owner_country="MX", resource=resource)
        session.commit()
    first = _get(client, "Patient", {"family": "garcia", "_sort": "birthdate", "_count": "4"})
    page_one = ids(first)
    assert len(page_one) == 4
    # Between page 1 and page 2: one patient sorting before the cursor arrives, and one
    # already seen is deleted. Neither shifts page 2 (an offset cursor would repeat or skip).
    with session_factory()() as session:
        store.put(
            session,
            owner="hgcj",
            owner_country="MX",
            resource=patient("hgcj-p900", "García", "Nuevo", "1900-01-01"),
        )
        from exchange.models import StoredResource

        seen = session.query(StoredResource).filter_by(res_id=page_one[0]).one()
        seen.deleted = True
        session.commit()
    second = _follow(client, first, "next")
    assert second is not None
    third = _follow(client, second, "next")
    assert third is not None
    assert _follow(client, third, "next") is None
    walked = page_one + ids(second) + ids(third)
    assert len(walked) == len(set(walked)) == 10
    assert "hgcj-p900" not in walked
    back = _follow(client, second, "previous")
    assert back is not None
    # Backwards from page 2 reads what now precedes it: the newcomer, not the deleted one.
    assert ids(back) == ["hgcj-p900", *page_one[1:]]
    links = {link["relation"]: link["url"] for link in second["link"]}
    assert "_page_token=" in links["self"]
    assert "_sort=birthdate" in links["self"]
    assert links["self"].count("_count=") == 1


def test_paging_by_last_updated_descending(client: TestClient) -> None:
    with session_factory()() as session:
        for resource in _many(5):
            store.put(session, owner="hgcj", owner_country="MX", resource=resource)
        session.commit()
    first = _get(client, "Patient", {"_sort": "-_lastUpdated", "_count": "2"})
    rest: list[str] = []
    page: dict[str, Any] | None = first
    for _ in range(5):  # a cursor that never ends fails here rather than hanging
        if page is None:
            break
        rest += ids(page)
        page = _follow(client, page, "next")
    assert page is None
    assert sorted(rest) == [f"hgcj-p{n:03d}" for n in range(5)]
    assert len(rest) == 5


def test_capability_lists_includes_and_params(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    listed = {r["type"]: r for r in statement["rest"][0]["resource"]}
    observation = listed["Observation"]
    assert "Observation:patient" in observation["searchInclude"]
    params = {(p["name"], p["type"]) for p in observation["searchParam"]}
    assert {("value-quantity", "quantity"), ("date", "date"), ("patient", "reference")} <= params
    assert "Provenance:target" in listed["Patient"]["searchRevInclude"]
    assert "Observation:patient" in listed["Patient"]["searchRevInclude"]
    documentation = statement["rest"][0]["documentation"]
    for word in ("_sort", "_elements", "_include", "_page_token"):
        assert word in documentation
