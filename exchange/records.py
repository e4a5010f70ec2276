"""What other domains may ask of the store's rows: read-only questions answered by the
store's own tables, so that no other domain queries them (consent labels and relabels
records, and checks Consents against the Organization directory, through these).

No policy here: these answer for any owner, and their callers decide what to do with the
contents (nothing here leaves Puente without passing the disclosure gate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from exchange.models import StoredResource
from puente.fhir.sql import among_in


def contents(
    session: Session,
    resource_type: str,
    *,
    owner: str | None = None,
    ids: Iterable[str] | None = None,
) -> list[tuple[str, Mapping[str, Any]]]:
    """(id, current content) of the live resources of a type, of one owner and among
    `ids` when given (none at all for an empty `ids`)."""
    statement = select(StoredResource.res_id, StoredResource.content).where(
        StoredResource.res_type == resource_type, StoredResource.deleted.is_(False)
    )
    if owner is not None:
        statement = statement.where(StoredResource.owner == owner)
    if ids is not None:
        statement = statement.where(StoredResource.res_id.in_(sorted(set(ids))))
    return [(res_id, content) for res_id, content in session.execute(statement) if content]


def current_versions(session: Session, pks: Iterable[int]) -> dict[int, int]:
    """pk -> its current version number."""
    wanted = sorted(set(pks))
    if not wanted:
        return {}
    rows = session.execute(
        select(StoredResource.pk, StoredResource.version).where(
            among_in(session, StoredResource.pk, wanted)
        )
    )
    return {int(pk): int(version) for pk, version in rows}


def live_pks(
    session: Session, *, after: int, limit: int, excluding: Select[Any] | None = None
) -> list[int]:
    """Up to `limit` pks above `after` of live resources, in order; `excluding`: a
    select of pks to leave out (the caller's own bookkeeping)."""
    statement = select(StoredResource.pk).where(
        StoredResource.pk > after, StoredResource.deleted.is_(False)
    )
    if excluding is not None:
        statement = statement.where(StoredResource.pk.not_in(excluding))
    return list(session.scalars(statement.order_by(StoredResource.pk).limit(limit)))


def rows_for_update(
    session: Session, pks: Sequence[int]
) -> list[tuple[int, str, Mapping[str, Any] | None, str]]:
    """(pk, type, current content or None, owner) of `pks`, locked as a writer would lock
    them: a concurrent write of one of them waits, or is waited for."""
    if not pks:
        return []
    rows = session.execute(
        select(
            StoredResource.pk, StoredResource.res_type, StoredResource.content, StoredResource.owner
        )
        .where(StoredResource.pk.in_(list(pks)))
        .with_for_update()
    ).all()
    return [(int(pk), str(t), content, str(owner)) for pk, t, content, owner in rows]


def owned_pks(owner: str) -> Select[Any]:
    """A select of the pks of `owner`'s resources (for a statement of the caller's)."""
    return select(StoredResource.pk).where(StoredResource.owner == owner)
