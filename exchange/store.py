"""The write path of the store: versions, meta, and index rows filled at write time."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import String, and_, delete, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent import service as labelling
from exchange import indexing
from exchange.matching import index as mpi
from exchange.models import (
    INDEX_TABLE_OF_TYPE,
    DateIndex,
    QuantityIndex,
    ReferenceIndex,
    ResourceVersion,
    StoredResource,
    StringIndex,
    TokenIndex,
)
from exchange.resources import STORE_TYPES
from exchange.validation import validate
from puente import pgcopy
from puente.db import utcnow
from puente.errors import Conflict
from puente.fhir.dates import instant
from puente.fhir.search import SearchParam
from puente.fhir.sql import among_in
from translation.i18n import N_

_INDEX_TABLES = (StringIndex, TokenIndex, DateIndex, ReferenceIndex, QuantityIndex)
# An ORM bulk INSERT leaves out the columns a row has as None, so rows with and without
# e.g. a token system each make their own statement; sending every column keeps one
# executemany per table (measured: ~1,700 statements -> ~20 for 1,560 resources).
_ALL_COLUMNS = {"render_nulls": True}


def source_uri(owner: str, country: str | None) -> str:
    """`meta.source`: which hospital system (and country) the data came from."""
    return f"urn:puente:source:{(country or 'xx').lower()}:{owner}"


def new_id() -> str:
    return str(uuid.uuid4())


def _params_for(resource_type: str) -> tuple[SearchParam, ...]:
    capability = STORE_TYPES.get(resource_type)
    return capability.search_params if capability else ()


def _index_rows(stored: StoredResource) -> dict[Any, list[dict[str, Any]]]:
    """The index rows of a resource's current content, per index table."""
    if stored.deleted or stored.content is None:
        return {table: [] for table in _INDEX_TABLES}
    return index_rows_of(stored.pk, stored.res_type, stored.content)


# Each index table's columns in the order `index_values_of` gives them: (resource_pk,
# res_type, param) and then the fields of indexing's row, in their order.
INDEX_COLUMNS: dict[Any, tuple[str, ...]] = {
    StringIndex: ("resource_pk", "res_type", "param", "value", "exact"),
    TokenIndex: ("resource_pk", "res_type", "param", "system", "code"),
    DateIndex: ("resource_pk", "res_type", "param", "low", "high"),
    ReferenceIndex: ("resource_pk", "res_type", "param", "target_type", "target_id"),
    QuantityIndex: ("resource_pk", "res_type", "param", "value", "system", "code"),
}


def index_values_of(
    pk: int, res_type: str, content: dict[str, Any]
) -> dict[Any, list[tuple[Any, ...]]]:
    """The index rows of one resource's content, per index table, as tuples of column
    values (`INDEX_COLUMNS`): built once per index row, many per resource written."""
    rows: dict[Any, list[tuple[Any, ...]]] = {table: [] for table in _INDEX_TABLES}
    elements = content.keys()
    for param, heads, table in _indexed(res_type):
        if heads.isdisjoint(elements):
            continue  # none of the parameter's elements is there: most are absent
        found = indexing.index_rows(content, param)
        if found:
            head = (pk, res_type, param.name)
            rows[table] += [head + row for row in found]
    return rows


@lru_cache(maxsize=256)
def _indexed(res_type: str) -> tuple[tuple[SearchParam, frozenset[str], Any], ...]:
    """A type's indexed search parameters, each with the top-level elements its paths
    start at and the table its rows go to."""
    return tuple(
        (param, frozenset(path.split(".", 1)[0] for path in param.paths), table)
        for param in _params_for(res_type)
        if (table := INDEX_TABLE_OF_TYPE.get(param.type)) is not None
    )


def index_rows_of(
    pk: int, res_type: str, content: dict[str, Any]
) -> dict[Any, list[dict[str, Any]]]:
    """The index rows of one resource's content, per index table, as column mappings."""
    return {
        table: [dict(zip(INDEX_COLUMNS[table], values, strict=True)) for values in rows]
        for table, rows in index_values_of(pk, res_type, content).items()
    }


def _index(session: Session, stored: StoredResource, *, fresh: bool = False) -> None:
    """Replace the resource's index rows. A resource written for the first time has none
    to delete; each table's rows go in one executemany (measured: indexing was most of a
    write's cost when every row was its own ORM object and every table got a DELETE)."""
    if not fresh:
        for table in _INDEX_TABLES:
            session.execute(delete(table).where(table.resource_pk == stored.pk))
    for table, rows in _index_rows(stored).items():
        if rows:
            session.execute(insert(table), rows, execution_options=_ALL_COLUMNS)


def reindex(session: Session, resource_type: str | None = None, *, batch: int = 500) -> int:
    """Rewrite the index rows of stored resources from their current content, e.g. after
    search parameters were added to a type: no new version, meta untouched. Returns how
    many resources were reindexed."""
    statement = select(StoredResource.pk).order_by(StoredResource.pk)
    if resource_type is not None:
        statement = statement.where(StoredResource.res_type == resource_type)
    pks = list(session.scalars(statement))
    for start in range(0, len(pks), batch):
        chunk = pks[start : start + batch]
        rows = session.scalars(select(StoredResource).where(StoredResource.pk.in_(chunk))).all()
        for stored in rows:
            _index(session, stored)
        session.flush()
    return len(pks)


def _stamp(content: dict[str, Any], stored: StoredResource) -> dict[str, Any]:
    return stamped(
        content,
        res_id=stored.res_id,
        version=stored.version,
        last_updated=stored.last_updated,
        owner=stored.owner,
        owner_country=stored.owner_country,
    )


def stamped(
    content: dict[str, Any],
    *,
    res_id: str,
    version: int,
    last_updated: dt.datetime,
    owner: str,
    owner_country: str | None,
    deep: bool = True,
) -> dict[str, Any]:
    """A copy of `content` with the server's id and meta (versionId, lastUpdated, source);
    `deep=False` shares the nested values with `content`, for a caller that drops it."""
    result = copy.deepcopy(content) if deep else dict(content)
    meta = dict(result.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(last_updated)
    meta["source"] = source_uri(owner, owner_country)
    result["meta"] = meta
    result["id"] = res_id
    return result


def same_content(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return False
    strip = ("meta",)
    return {k: v for k, v in old.items() if k not in strip} == {
        k: v for k, v in new.items() if k not in strip
    }


def load(
    session: Session, resource_type: str, res_id: str, *, lock: bool = False
) -> StoredResource | None:
    """The current row of a resource; `lock` holds it (PostgreSQL) until the transaction ends,
    so two writers of one resource take turns and version numbers never collide."""
    statement = select(StoredResource).where(
        StoredResource.res_type == resource_type, StoredResource.res_id == res_id
    )
    if lock:
        statement = statement.with_for_update()
    return session.scalars(statement).one_or_none()


def load_many(
    session: Session, keys: Iterable[tuple[str, str]], *, lock: bool = False
) -> dict[tuple[str, str], StoredResource]:
    """The current rows of several resources by (type, id), as `load` reads one."""
    ids_by_type: dict[str, list[str]] = {}
    for resource_type, res_id in keys:
        ids_by_type.setdefault(resource_type, []).append(res_id)
    if not ids_by_type:
        return {}
    statement = select(StoredResource).where(
        or_(
            *(
                and_(
                    StoredResource.res_type == resource_type,
                    among_in(session, StoredResource.res_id, ids, String),
                )
                for resource_type, ids in ids_by_type.items()
            )
        )
    )
    if lock:
        # Rows are locked in the order they are returned: one order for every writer, so
        # two batches that share resources wait for each other instead of deadlocking.
        statement = statement.order_by(
            StoredResource.res_type, StoredResource.res_id
        ).with_for_update()
    return {(row.res_type, row.res_id): row for row in session.scalars(statement)}


def _record(session: Session, stored: StoredResource, method: str) -> None:
    session.add(
        ResourceVersion(
            resource_pk=stored.pk,
            version=stored.version,
            res_type=stored.res_type,
            res_id=stored.res_id,
            owner=stored.owner,
            deleted=stored.deleted,
            method=method,
            last_updated=stored.last_updated,
            content=stored.content,
        )
    )
    fresh = stored.version == 1  # created by this write: no index or label rows yet
    _index(session, stored, fresh=fresh)
    labelling.label_written(
        session,
        resources=[labelling.Written(stored.pk, stored.res_type, stored.content, stored.owner)],
        fresh=fresh,
    )
    session.flush()


def write(
    session: Session,
    *,
    stored: StoredResource | None,
    owner: str,
    owner_country: str | None,
    content: dict[str, Any],
    method: str,
) -> tuple[StoredResource, bool]:
    """Write validated `content` (its id set) as the next version of `stored`, or as a new
    resource when `stored` is None. Whoever calls has already decided `owner` may.

    Returns the row and whether a version was written: an update that changes nothing
    keeps the current version, as HAPI does.
    """
    if stored is not None and not stored.deleted and same_content(stored.content, content):
        return stored, False
    now = utcnow()
    if stored is None:
        stored = StoredResource(
            res_type=content["resourceType"],
            res_id=content["id"],
            version=1,
            owner=owner,
            owner_country=owner_country,
            deleted=False,
            last_updated=now,
        )
        stored.content = _stamp(content, stored)
        _insert_new(session, stored)
    else:
        stored.version += 1
        stored.deleted = False
        stored.last_updated = now
        stored.content = _stamp(content, stored)
        session.flush()
    _record(session, stored, method)
    mpi.patient_written(session, stored)
    return stored, True


def _insert_new(session: Session, stored: StoredResource) -> None:
    """INSERT a resource's first row, or 409 if another transaction created one at the same
    (type, id) meanwhile: both read no row, and the unique constraint lets one win (on
    PostgreSQL the loser's INSERT waits for the winner's commit, on SQLite for its lock).

    No savepoint of its own (two more round trips a create): the refused INSERT fails the
    transaction, which the request rolls back, and callers that carry on after a refused
    write (batch entries, import lines) already hold a savepoint each.
    """
    session.add(stored)
    try:
        session.flush()
    except IntegrityError as exc:
        if not _is_type_id_conflict(exc):
            raise
        raise Conflict(
            N_("error.created_concurrently"),
            resource_type=stored.res_type,
            res_id=stored.res_id,
        ) from exc


def _is_type_id_conflict(exc: IntegrityError) -> bool:
    """Whether the unique (type, id) constraint refused the INSERT: PostgreSQL names the
    constraint, SQLite names its columns."""
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if constraint is not None:
        return bool(constraint == "uq_resource_type_id")
    return "resource.res_type, resource.res_id" in str(exc.orig)


def lost_create_race(exc: BaseException) -> bool:
    """Whether `exc` is a bulk create (`create_many`) refused because another transaction
    created one of its resources meanwhile: SQLAlchemy's IntegrityError, or psycopg's own
    from a COPY. Run again, the batch finds that resource stored and updates it."""
    if isinstance(exc, IntegrityError):
        return _is_type_id_conflict(exc)
    constraint = getattr(getattr(exc, "diag", None), "constraint_name", None)
    return constraint == "uq_resource_type_id"


@dataclass(frozen=True)
class Created:
    """A resource `create_many` wrote: its first version."""

    pk: int
    res_type: str
    res_id: str
    last_updated: dt.datetime
    content: dict[str, Any]  # as stored: with the server's id and meta

    @property
    def version(self) -> int:
        return 1


def create_many(
    session: Session,
    *,
    owner: str,
    owner_country: str | None,
    contents: list[dict[str, Any]],
    method: str,
) -> list[Created]:
    """Write validated `contents` (ids set, none stored yet) as new resources: what `write`
    with `stored=None` does for each, in one INSERT per table, or one COPY per table on
    PostgreSQL (measured: a bulk import spent most of its time in the per-resource round
    trips of the ORM flush, then in building and planning multi-row INSERTs). The stored
    documents share nested values with `contents`, which the caller must not change
    afterwards. Returns what was written, in the order of `contents`."""
    if not contents:
        return []
    resources = []
    for content in contents:
        now = utcnow()
        resources.append(
            {
                "res_type": content["resourceType"],
                "res_id": content["id"],
                "version": 1,
                "owner": owner,
                "owner_country": owner_country,
                "deleted": False,
                "last_updated": now,
                "content": stamped(
                    content,
                    res_id=content["id"],
                    version=1,
                    last_updated=now,
                    owner=owner,
                    owner_country=owner_country,
                    deep=False,
                ),
            }
        )
    if pgcopy.is_postgresql(session):
        pks = _copy_new(session, resources, method)
    else:
        pks = _insert_many(session, resources, method)
    labelling.label_written(
        session,
        resources=[
            labelling.Written(pk, r["res_type"], r["content"], owner)
            for pk, r in zip(pks, resources, strict=True)
        ],
        fresh=True,
    )
    mpi.patients_created(
        session,
        owner=owner,
        created=(
            (pk, r["res_type"], r["res_id"], r["content"])
            for pk, r in zip(pks, resources, strict=True)
        ),
    )
    return [
        Created(pk, r["res_type"], r["res_id"], r["last_updated"], r["content"])
        for pk, r in zip(pks, resources, strict=True)
    ]


_RESOURCE_COLUMNS = (
    "pk",
    "res_type",
    "res_id",
    "version",
    "owner",
    "owner_country",
    "deleted",
    "last_updated",
    "content",
)
_VERSION_COLUMNS = (
    "resource_pk",
    "version",
    "res_type",
    "res_id",
    "owner",
    "deleted",
    "method",
    "last_updated",
    "content",
)


def _copy_new(session: Session, resources: list[dict[str, Any]], method: str) -> list[int]:
    """`create_many` on PostgreSQL: the keys drawn from the resource table's sequence
    first, then every table COPYed; each document is serialised once, for the current
    row and for its first version alike."""
    pks = pgcopy.next_keys(session, StoredResource.__tablename__, "pk", len(resources))
    current: list[tuple[Any, ...]] = []
    versions: list[tuple[Any, ...]] = []
    index: dict[Any, list[tuple[Any, ...]]] = {table: [] for table in _INDEX_TABLES}
    for pk, row in zip(pks, resources, strict=True):
        document = json.dumps(row["content"], separators=(",", ":"))
        res_type, res_id, owner = row["res_type"], row["res_id"], row["owner"]
        last_updated = row["last_updated"]
        current.append(
            (pk, res_type, res_id, 1, owner, row["owner_country"], False, last_updated, document)
        )
        versions.append((pk, 1, res_type, res_id, owner, False, method, last_updated, document))
        for table, values in index_values_of(pk, res_type, row["content"]).items():
            index[table].extend(values)
    # Inserted by (type, id), whatever the lines' order: two imports creating some of the
    # same resources then wait on the unique index in one order and never deadlock.
    current.sort(key=lambda row: (row[1], row[2]))
    pgcopy.copy_rows(session, StoredResource.__tablename__, _RESOURCE_COLUMNS, current)
    pgcopy.copy_rows(session, ResourceVersion.__tablename__, _VERSION_COLUMNS, versions)
    for table, values in index.items():
        if values:
            pgcopy.copy_rows(session, table.__tablename__, INDEX_COLUMNS[table], values)
    return list(pks)


def _insert_many(session: Session, resources: list[dict[str, Any]], method: str) -> list[int]:
    """`create_many` elsewhere (SQLite): one executemany INSERT per table; the new keys."""
    returning = insert(StoredResource).returning(StoredResource.pk, sort_by_parameter_order=True)
    pks = session.execute(returning, resources).scalars().all()
    versions = []
    index: dict[Any, list[dict[str, Any]]] = {table: [] for table in _INDEX_TABLES}
    for pk, row in zip(pks, resources, strict=True):
        versions.append(
            {
                "resource_pk": pk,
                "version": 1,
                "res_type": row["res_type"],
                "res_id": row["res_id"],
                "owner": row["owner"],
                "deleted": False,
                "method": method,
                "last_updated": row["last_updated"],
                "content": row["content"],
            }
        )
        for table, rows in index_rows_of(pk, row["res_type"], row["content"]).items():
            index[table].extend(rows)
    session.execute(insert(ResourceVersion), versions, execution_options=_ALL_COLUMNS)
    for table, rows in index.items():
        if rows:
            session.execute(insert(table), rows, execution_options=_ALL_COLUMNS)
    return list(pks)


def delete_current(session: Session, stored: StoredResource) -> bool:
    """A new version marked deleted, with no content and no index rows; False if the
    resource was already deleted (no version is written)."""
    if stored.deleted:
        return False
    stored.version += 1
    stored.deleted = True
    stored.last_updated = utcnow()
    stored.content = None
    session.flush()
    _record(session, stored, "DELETE")
    mpi.patient_deleted(session, stored)
    return True


def put(
    session: Session,
    *,
    owner: str,
    owner_country: str | None,
    resource: dict[str, Any],
    method: str = "PUT",
) -> tuple[StoredResource, bool]:
    """Create or update `resource` at its id on behalf of `owner` (operators, the demo and
    tests; the API's writes go through `exchange.writes`). Another owner's id is a conflict.
    """
    content = validate(resource)
    resource_type = content["resourceType"]
    res_id = content.get("id") or new_id()
    stored = load(session, resource_type, res_id)
    if stored is not None and stored.owner != owner:
        raise Conflict(N_("error.id_owned_elsewhere"), resource_type=resource_type)
    if stored is None and method == "PUT" and "id" not in resource:
        method = "POST"
    return write(
        session,
        stored=stored,
        owner=owner,
        owner_country=owner_country,
        content={**content, "id": res_id},
        method=method,
    )
