"""The store's hook: every Patient write keeps its features and blocking keys current, in
the writer's transaction, and asks for the links to be re-evaluated once it commits.

One task per transaction, naming every Patient it wrote: a bulk import of thousands of
Patients sends a task per batch, not thousands (see `benchmarks/match_latency.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from exchange.matching import blocking, links
from exchange.matching import features as feature_module
from exchange.matching.models import BlockKey, MatchRecord
from exchange.matching.tasks import MATCH_TASK
from exchange.models import StoredResource
from puente import pgcopy
from puente.tasks import PENDING_KEY, enqueue

PATIENT = "Patient"
_RECORD_COLUMNS = ("resource_pk", "res_id", "owner", "version", "features")
_KEY_COLUMNS = ("resource_pk", "owner", "key")


def _rows(
    pk: int, res_id: str, owner: str, version: int, content: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    found = feature_module.features({**content, "id": res_id})
    record = {
        "resource_pk": pk,
        "res_id": res_id,
        "owner": owner,
        "version": version,
        "features": feature_module.to_json(found),
    }
    keys = [
        {"resource_pk": pk, "owner": owner, "key": key}
        for key in sorted(blocking.blocking_keys(found))
    ]
    return record, keys


def _request_matching(session: Session, pks: Iterable[int]) -> None:
    """Add `pks` to this transaction's matching task, or enqueue one."""
    wanted = list(pks)
    if not wanted:
        return
    if not session.in_transaction():
        session.begin()
    transaction = session.get_nested_transaction() or session.get_transaction()
    for item_transaction, name, args in session.info.get(PENDING_KEY, []):
        if item_transaction is transaction and name == MATCH_TASK:
            args[0].extend(pk for pk in wanted if pk not in args[0])
            return
    enqueue(session, MATCH_TASK, wanted)


def patient_written(session: Session, stored: StoredResource) -> None:
    """A Patient was created or updated: replace its features and keys, match after commit."""
    if stored.res_type != PATIENT or stored.content is None:
        return
    pk = stored.pk
    record, keys = _rows(pk, stored.res_id, stored.owner, stored.version, stored.content)
    if session.get(MatchRecord, pk) is None:
        session.execute(insert(MatchRecord), [record])
    else:
        session.execute(
            update(MatchRecord)
            .where(MatchRecord.resource_pk == pk)
            .values(owner=stored.owner, version=stored.version, features=record["features"])
        )
        session.execute(delete(BlockKey).where(BlockKey.resource_pk == pk))
    if keys:
        session.execute(insert(BlockKey), keys)
    _request_matching(session, [pk])


def patients_created(
    session: Session, *, owner: str, created: Iterable[tuple[int, str, str, Any]]
) -> None:
    """Resources written in bulk, as (pk, type, id, content): the Patients among them get
    their features and keys in one INSERT per table, and one matching task."""
    records: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for pk, res_type, res_id, content in created:
        if res_type != PATIENT:
            continue
        record, record_keys = _rows(pk, res_id, owner, 1, content)
        records.append(record)
        keys.extend(record_keys)
    if records and pgcopy.is_postgresql(session):
        # A bulk import's Patients, COPYed like the resources they were made from.
        pgcopy.copy_rows(
            session,
            MatchRecord.__tablename__,
            _RECORD_COLUMNS,
            (
                tuple(
                    json.dumps(row[column], separators=(",", ":"))
                    if column == "features"
                    else row[column]
                    for column in _RECORD_COLUMNS
                )
                for row in records
            ),
        )
        pgcopy.copy_rows(
            session,
            BlockKey.__tablename__,
            _KEY_COLUMNS,
            (tuple(row[column] for column in _KEY_COLUMNS) for row in keys),
        )
    else:
        if records:
            session.execute(insert(MatchRecord), records)
        if keys:
            session.execute(insert(BlockKey), keys)
    _request_matching(session, (record["resource_pk"] for record in records))


def patient_deleted(session: Session, stored: StoredResource) -> None:
    """A deleted Patient leaves the index, and its links are undone (with history)."""
    if stored.res_type != PATIENT:
        return
    pk = stored.pk
    links.unlink_deleted(session, pk=pk)
    session.execute(delete(BlockKey).where(BlockKey.resource_pk == pk))
    session.execute(delete(MatchRecord).where(MatchRecord.resource_pk == pk))
