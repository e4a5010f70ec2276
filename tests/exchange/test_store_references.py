"""Versions, index rows and security label rows always name a stored resource and go with
it (migrations 0007's and 0008's triggers, which stand in for foreign keys)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from consent.models import LabelState, ResourceLabel
from exchange import store
from exchange.models import RESOURCE_REFERENCES, ResourceVersion, StoredResource, TokenIndex
from puente import pgcopy

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:puente:hgcj:expediente", "value": "HG-9"}],
    "gender": "female",
    "meta": {
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ]
    },
}


def _patient(db: Session, res_id: str) -> StoredResource:
    stored, _ = store.put(db, owner="hgcj", owner_country="MX", resource={**PATIENT, "id": res_id})
    return stored


def _token(pk: int, code: str = "x") -> dict[str, Any]:
    return {
        "resource_pk": pk,
        "res_type": "Patient",
        "param": "gender",
        "system": None,
        "code": code,
    }


def _counts(db: Session, pk: int) -> dict[str, int]:
    return {
        table: db.execute(
            text(f"SELECT count(*) FROM {table} WHERE resource_pk = :pk"),  # noqa: S608
            {"pk": pk},
        ).scalar_one()
        for table in RESOURCE_REFERENCES
    }


def test_a_row_naming_no_resource_is_refused(db: Session) -> None:
    stored = _patient(db, "hgcj-refs")
    missing = stored.pk + 1000
    # one bad row among good ones spoils the statement
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(TokenIndex), [_token(stored.pk), _token(missing), _token(stored.pk)])
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            insert(ResourceVersion).values(
                resource_pk=missing,
                version=1,
                res_type="Patient",
                res_id="hgcj-ghost",
                owner="hgcj",
                deleted=False,
                method="PUT",
                last_updated=stored.last_updated,
                content={"resourceType": "Patient"},
            )
        )
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            update(TokenIndex)
            .where(TokenIndex.resource_pk == stored.pk)
            .values(resource_pk=missing)
        )
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(LabelState).values(resource_pk=missing, lists_version="v", part2=False))
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            insert(ResourceLabel).values(resource_pk=missing, system="s", code="c", source="puente")
        )
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            update(LabelState)
            .where(LabelState.resource_pk == stored.pk)
            .values(resource_pk=missing)
        )
    # the resource's own rows are untouched by the refusals
    assert _counts(db, stored.pk)["idx_token"] > 0
    assert db.scalar(select(func.count()).where(TokenIndex.resource_pk == missing)) == 0
    assert _counts(db, stored.pk)["resource_label_state"] == 1
    assert _counts(db, missing) == dict.fromkeys(RESOURCE_REFERENCES, 0)


def test_a_copied_row_naming_no_resource_is_refused(db: Session, is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("COPY is PostgreSQL's")
    stored = _patient(db, "hgcj-copied")
    columns = store.INDEX_COLUMNS[TokenIndex]
    rows = [
        (stored.pk, "Patient", "gender", None, "a"),
        (stored.pk + 1000, "Patient", "gender", None, "b"),
    ]
    with pytest.raises(psycopg.errors.ForeignKeyViolation), db.begin_nested():
        pgcopy.copy_rows(db, TokenIndex.__tablename__, columns, rows)
    pgcopy.copy_rows(db, TokenIndex.__tablename__, columns, rows[:1])
    with pytest.raises(psycopg.errors.ForeignKeyViolation), db.begin_nested():
        pgcopy.copy_rows(
            db,
            LabelState.__tablename__,
            ("resource_pk", "lists_version", "part2"),
            [(stored.pk + 1000, "v", False)],
        )
    assert (
        db.scalar(
            select(func.count()).where(TokenIndex.resource_pk == stored.pk, TokenIndex.code == "a")
        )
        == 1
    )


def test_a_deleted_resource_takes_its_rows_and_keeps_its_key(db: Session) -> None:
    gone, kept = _patient(db, "hgcj-gone"), _patient(db, "hgcj-kept")
    before = _counts(db, kept.pk)
    assert all(_counts(db, gone.pk)[t] > 0 for t in ("resource_version", "idx_token"))
    assert all(_counts(db, gone.pk)[t] > 0 for t in ("resource_label", "resource_label_state"))
    with pytest.raises(DBAPIError), db.begin_nested():
        db.execute(
            update(StoredResource).where(StoredResource.pk == kept.pk).values(pk=kept.pk + 1000)
        )
    db.execute(text("DELETE FROM resource WHERE pk = :pk"), {"pk": gone.pk})
    assert set(_counts(db, gone.pk).values()) == {0}
    assert _counts(db, kept.pk) == before
