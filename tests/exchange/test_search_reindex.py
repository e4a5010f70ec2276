"""`store.reindex`: resources stored before a parameter existed become findable by it,
without a new version."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import delete

from exchange import store
from exchange.models import StoredResource, StringIndex
from puente.db import session_factory
from tests.exchange.search_data import ids, load
from tests.factories import bearer


def test_reindex_fills_rows_of_new_parameters_without_a_version(client: TestClient) -> None:
    load()
    with session_factory()() as session:
        # As if the rows had been written before `address-state` was a parameter.
        session.execute(delete(StringIndex).where(StringIndex.param == "address-state"))
        session.commit()
    search = {"address-state": "chihuahua"}
    assert ids(client.get("/fhir/Patient", params=search, headers=bearer()).json()) == []
    with session_factory()() as session:
        assert store.reindex(session, "Patient") == 3
        session.commit()
    found = client.get("/fhir/Patient", params=search, headers=bearer()).json()
    assert ids(found) == ["hgcj-1001"]
    assert found["entry"][0]["resource"]["meta"]["versionId"] == "1"
    with session_factory()() as session:
        assert store.reindex(session) > 3  # every type
        session.commit()
        stored = session.query(StoredResource).filter_by(res_id="hgcj-1001").one()
        assert stored.version == 1
