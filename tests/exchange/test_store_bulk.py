"""`store.create_many`, the bulk write of an import (COPY on PostgreSQL, a multi-row INSERT
elsewhere), stores the rows and index rows that writing each resource alone does."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from demo.generator import generate
from exchange import store
from exchange.models import ResourceVersion, StoredResource
from exchange.validation import validate

# COPY's text format treats tabs, newlines, backslashes and `\N` specially, its binary
# format sends lengths: either way they must arrive as sent.
AWKWARD = {
    "resourceType": "Patient",
    "identifier": [
        {"system": "urn:puente:hgcj:expediente", "value": "tab\there\\N"},
        {"system": "urn:example:long", "value": "x" * 300},
    ],
    "name": [{"family": 'Núñez\\ "O\'Brien"', "given": ["José\nMaría", "\\N"]}],
    "birthDate": "1970",
    "address": [{"city": "Ciudad Juárez\tCentro", "postalCode": "32000"}],
}
AWKWARD_OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/hgcj-a-awkward"},
    "effectivePeriod": {"start": "2024-05-01T10:00:00-06:00"},
    "valueQuantity": {"value": 1.50, "unit": "mg", "system": "http://unitsofmeasure.org"},
}


def _resources() -> list[dict[str, Any]]:
    records = generate(patients_per_hospital=6, seed=11).records["hgcj"]
    awkward: list[dict[str, Any]] = [
        {**AWKWARD, "id": "hgcj-awkward"},
        {**AWKWARD_OBSERVATION, "id": "hgcj-obs"},
    ]
    return [copy.deepcopy(r) for r in records if r["resourceType"] != "Organization"] + awkward


def _with_prefix(resource: dict[str, Any], prefix: str) -> dict[str, Any]:
    result = copy.deepcopy(resource)
    result["id"] = f"hgcj-{prefix}-{resource['id'].removeprefix('hgcj-')}"
    return result


def _snapshot(session: Session, prefix: str) -> dict[str, Any]:
    """What is stored for the resources whose ids carry `prefix`, with the database's keys
    and the write's instant left out."""
    rows = session.scalars(
        select(StoredResource).where(StoredResource.res_id.like(f"hgcj-{prefix}-%"))
    ).all()
    id_of = {row.pk: row.res_id.replace(f"-{prefix}-", "-") for row in rows}

    def document(content: dict[str, Any] | None) -> dict[str, Any]:
        assert content is not None
        meta = {k: v for k, v in content["meta"].items() if k != "lastUpdated"}
        return {**content, "id": content["id"].replace(f"-{prefix}-", "-"), "meta": meta}

    found: dict[str, Any] = {
        "resource": sorted(
            (
                id_of[row.pk],
                row.res_type,
                row.version,
                row.owner,
                row.owner_country,
                row.deleted,
                repr(document(row.content)),
            )
            for row in rows
        )
    }
    versions = session.scalars(
        select(ResourceVersion).where(ResourceVersion.resource_pk.in_(list(id_of)))
    ).all()
    found["resource_version"] = sorted(
        (id_of[v.resource_pk], v.version, v.method, v.deleted, repr(document(v.content)))
        for v in versions
    )
    for table, columns in store.INDEX_COLUMNS.items():
        values = session.execute(
            select(*(getattr(table, c) for c in columns)).where(table.resource_pk.in_(list(id_of)))
        ).all()
        found[table.__tablename__] = sorted((id_of[value[0]], *value[1:]) for value in values)
    return found


def test_bulk_write_stores_what_single_writes_store(db: Session) -> None:
    resources = _resources()
    for resource in resources:
        store.put(
            db,
            owner="hgcj",
            owner_country="MX",
            resource=_with_prefix(resource, "one"),
            method="PUT",
        )
    store.create_many(
        db,
        owner="hgcj",
        owner_country="MX",
        contents=[validate(_with_prefix(r, "bulk")) for r in resources],
        method="PUT",
    )
    db.flush()
    one, bulk = _snapshot(db, "one"), _snapshot(db, "bulk")
    assert len(one["resource"]) == len(resources)
    assert bulk == one
    # the awkward texts arrived as sent, and the long code was cut to the column
    awkward = db.scalars(
        select(StoredResource).where(StoredResource.res_id == "hgcj-bulk-awkward")
    ).one()
    assert awkward.content is not None
    assert awkward.content["name"][0]["given"] == ["José\nMaría", "\\N"]
    assert awkward.content["identifier"][0]["value"] == "tab\there\\N"
    codes = {row[-1] for row in bulk["idx_token"] if row[0] == "hgcj-awkward"}
    assert "x" * 255 in codes
    assert "tab\there\\N" in codes
    strings = {row[-1] for row in bulk["idx_string"] if row[0] == "hgcj-awkward"}
    assert {"José\nMaría", "\\N", "Ciudad Juárez\tCentro"} <= strings
    quantities = [row for row in bulk["idx_quantity"] if row[0] == "hgcj-obs"]
    assert [(str(row[3].normalize()), row[5]) for row in quantities] == [("1.5", "mg")]
