"""Delete and history over HTTP: 410 after a delete, history bundles with paging and _since."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import bearer, fhir_json, patient

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")


def _create(client: TestClient, headers: dict[str, str] = HGCJ, **fields: Any) -> str:
    response = client.post(
        "/fhir/Patient", json=patient(**fields), headers={**headers, **fhir_json()}
    )
    assert response.status_code == 201
    res_id: str = response.json()["id"]
    return res_id


def test_delete_then_read_is_gone_and_history_shows_it(client: TestClient) -> None:
    res_id = _create(client)
    url = f"/fhir/Patient/{res_id}"
    deleted = client.delete(url, headers=HGCJ)
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    gone = client.get(url, headers=HGCJ)
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(url, headers=UMCEP).status_code == 404
    assert client.delete(url, headers=HGCJ).status_code == 204  # already deleted, no version
    history = client.get(f"{url}/_history", headers=HGCJ).json()
    assert history["type"] == "history"
    assert history["total"] == 2
    newest, oldest = history["entry"]
    assert newest["request"] == {"method": "DELETE", "url": f"Patient/{res_id}"}
    assert "resource" not in newest
    assert newest["response"]["etag"] == 'W/"2"'
    assert oldest["request"]["method"] == "POST"
    assert oldest["response"]["status"].startswith("201")
    assert oldest["resource"]["meta"]["versionId"] == "1"
    assert client.get(f"/fhir/Patient?_id={res_id}", headers=HGCJ).json()["total"] == 0


def test_deleted_then_put_comes_back_as_a_new_version(client: TestClient) -> None:
    url = "/fhir/Patient/hgcj-77"
    client.put(url, json=patient(id="hgcj-77"), headers={**HGCJ, **fhir_json()})
    assert client.delete(url, headers={**HGCJ, "If-Match": 'W/"3"'}).status_code == 412
    assert client.delete(url, headers={**HGCJ, "If-Match": 'W/"1"'}).status_code == 204
    again = client.put(url, json=patient(id="hgcj-77"), headers={**HGCJ, **fhir_json()})
    assert again.status_code == 201
    assert again.json()["meta"]["versionId"] == "3"


def test_type_and_system_history_show_only_own_resources(client: TestClient) -> None:
    own = _create(client)
    theirs = _create(client, UMCEP)
    for path in ("/fhir/Patient/_history", "/fhir/_history"):
        body = client.get(path, headers=HGCJ).json()
        ids = {e["resource"]["id"] for e in body["entry"]}
        assert own in ids, path
        assert theirs not in ids, path


def test_history_paging_and_since(client: TestClient) -> None:
    res_id = _create(client)
    url = f"/fhir/Patient/{res_id}"
    for gender in ("female", "other", "unknown"):
        current = client.get(url, headers=HGCJ).json()
        client.put(url, json={**current, "gender": gender}, headers={**HGCJ, **fhir_json()})
    first = client.get(f"{url}/_history", params={"_count": 2}, headers=HGCJ).json()
    assert first["total"] == 4
    assert [e["resource"]["meta"]["versionId"] for e in first["entry"]] == ["4", "3"]
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "next" in links
    assert "previous" not in links
    second = client.get(links["next"].removeprefix("http://testserver"), headers=HGCJ).json()
    assert [e["resource"]["meta"]["versionId"] for e in second["entry"]] == ["2", "1"]
    assert "previous" in {link["relation"] for link in second["link"]}
    last = client.get(f"{url}/_history/4", headers=HGCJ).json()["meta"]["lastUpdated"]
    since = client.get(f"{url}/_history", params={"_since": last}, headers=HGCJ).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["4"]
    bad = client.get(f"{url}/_history", params={"_since": "yesterday"}, headers=HGCJ)
    assert bad.status_code == 400


def test_since_excludes_older_versions_of_other_resources(client: TestClient) -> None:
    older = _create(client)
    time.sleep(0.01)
    client.get("/fhir/metadata")
    newer = _create(client)
    stamp = client.get(f"/fhir/Patient/{newer}", headers=HGCJ).json()["meta"]["lastUpdated"]
    body = client.get("/fhir/Patient/_history", params={"_since": stamp}, headers=HGCJ).json()
    ids = {e["resource"]["id"] for e in body.get("entry", [])}
    assert newer in ids
    assert older not in ids


def test_capability_lists_writes_and_history(client: TestClient) -> None:
    rest = client.get("/fhir/metadata").json()["rest"][0]
    patient_entry = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient_entry["interaction"]}
    assert {"create", "update", "patch", "delete", "history-instance", "history-type"} <= codes
    assert patient_entry["conditionalCreate"] is True
    assert patient_entry["conditionalDelete"] == "single"
    assert patient_entry["versioning"] == "versioned-update"
    assert {"code": "history-system"} in rest["interaction"]
