"""Security labels of stored resources: computed at write time, kept beside the resource,
merged into `meta.security` on output (ARCHITECTURE.md). Services flush, never commit.

A resource is from a Part 2 program when one of the references that say who produced or
holds it (`performer`, `performer.actor`, `serviceProvider`, `custodian`, `author`,
`recorder`, `asserter`, `requester`, `informationSource`), or the `serviceProvider` of the
stored Encounter it points at (`encounter`, `context`), names a program registered for the
hospital system that sent it (`part2_program`). Its codes alone never make it Part 2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, delete, false, insert, or_, select, true
from sqlalchemy.orm import Session

from consent.labels import CodeLists, compile_lists, labels_for, lists_version, shipped_lists
from consent.models import LabelState, Part2Program, ResourceLabel
from exchange import records
from puente import pgcopy
from puente.audit import service as audit
from puente.fhir.sql import among_in

SENDER = "sender"
COMPUTED = "puente"
# Lists with no rows: `labels_for` with them returns only what the sender put on a resource.
_NO_LISTS = compile_lists("system,from,to,match,label,effect,note\n")
_SOURCE_FIELDS = (
    "performer",
    "serviceProvider",
    "custodian",
    "author",
    "recorder",
    "asserter",
    "requester",
    "informationSource",
)
_ENCOUNTER_FIELDS = ("encounter", "context")


class Written(NamedTuple):
    """A resource as written: its pk, type, current content (None once deleted), owner."""

    pk: int
    res_type: str
    content: Mapping[str, Any] | None
    owner: str


def _relative(reference: Any) -> str | None:
    """`Organization/x` of a reference (relative or absolute), None for contained/logical."""
    if not isinstance(reference, Mapping):
        return None
    raw = reference.get("reference")
    if not isinstance(raw, str) or raw.startswith("#"):
        return None
    parts = raw.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _references(content: Mapping[str, Any], fields: Iterable[str]) -> Iterator[str]:
    for field in fields:
        value = content.get(field)
        for item in value if isinstance(value, list) else [value]:
            actor = item.get("actor") if isinstance(item, Mapping) and "actor" in item else item
            found = _relative(actor)
            if found is not None:
                yield found


def _encounter_providers(
    session: Session, resources: Sequence[Written]
) -> dict[tuple[str, str], set[str]]:
    """(owner, `Encounter/id`) -> the references of that stored Encounter's provider."""
    wanted: dict[str, set[str]] = {}
    for resource in resources:
        if resource.content is None or resource.res_type == "Encounter":
            continue
        for ref in _references(resource.content, _ENCOUNTER_FIELDS):
            if ref.startswith("Encounter/"):
                wanted.setdefault(resource.owner, set()).add(ref.split("/", 1)[1])
    found: dict[tuple[str, str], set[str]] = {}
    for owner, ids in wanted.items():
        for res_id, content in records.contents(session, "Encounter", owner=owner, ids=ids):
            found[(owner, f"Encounter/{res_id}")] = set(_references(content, ("serviceProvider",)))
    return found


def _programs(session: Session, owners: Iterable[str]) -> set[tuple[str, str]]:
    owners = sorted(set(owners))
    if not owners:
        return set()
    rows = session.execute(
        select(Part2Program.owner, Part2Program.reference).where(Part2Program.owner.in_(owners))
    )
    return {(owner, reference) for owner, reference in rows}


def _is_part2(
    resource: Written,
    programs: set[tuple[str, str]],
    providers: dict[tuple[str, str], set[str]],
) -> bool:
    assert resource.content is not None
    refs = set(_references(resource.content, _SOURCE_FIELDS))
    for ref in _references(resource.content, _ENCOUNTER_FIELDS):
        refs |= providers.get((resource.owner, ref), set())
    return any((resource.owner, ref) in programs for ref in refs)


def label_written(
    session: Session,
    *,
    resources: Sequence[Written],
    lists: CodeLists | None = None,
    fresh: bool = False,
) -> None:
    """Replace the stored labels of `resources` with those their current content carries
    (none for a deleted one). Called by the store on every write; no version is made.
    `fresh`: the resources were created in this transaction, so there is nothing to
    replace (measured: the two DELETEs were 17% of a 100-entry transaction Bundle's time).
    Many fresh resources at once have their rows COPYed on PostgreSQL (a bulk import
    writes a state row for each of its resources)."""
    if not resources:
        return
    book = lists or shipped_lists()
    pks = [r.pk for r in resources]
    if not fresh:
        for table in (ResourceLabel, LabelState):
            session.execute(delete(table).where(table.resource_pk.in_(pks)))
    live = [r for r in resources if r.content is not None]
    if not live:
        return
    programs = _programs(session, (r.owner for r in live))
    providers = _encounter_providers(session, live) if programs else {}
    labels: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for resource in live:
        assert resource.content is not None
        part2 = bool(programs) and _is_part2(resource, programs, providers)
        found = labels_for(resource.content, part2_program=part2, lists=book)
        # most resources carry no label: the sender's own are only looked for among some
        sender = labels_for(resource.content, part2_program=False, lists=_NO_LISTS) if found else ()
        for label in sorted(found):
            source = SENDER if label in sender else COMPUTED
            labels.append(
                {
                    "resource_pk": resource.pk,
                    "system": label.system,
                    "code": label.code,
                    "source": source,
                }
            )
        states.append({"resource_pk": resource.pk, "lists_version": book.version, "part2": part2})
    if fresh and len(resources) >= COPY_FROM and pgcopy.is_postgresql(session):
        pgcopy.copy_rows(session, ResourceLabel.__tablename__, _LABEL_COLUMNS, _values(labels))
        pgcopy.copy_rows(session, LabelState.__tablename__, _STATE_COLUMNS, _values(states))
        return
    if labels:
        session.execute(insert(ResourceLabel), labels)
    session.execute(insert(LabelState), states)


# Fresh resources written at once from which their label rows are COPYed rather than
# INSERTed: a bulk import's batch, not a single write.
COPY_FROM = 50
_LABEL_COLUMNS = ("resource_pk", "system", "code", "source")
_STATE_COLUMNS = ("resource_pk", "lists_version", "part2")


def _values(rows: list[dict[str, Any]]) -> Iterable[tuple[Any, ...]]:
    return (tuple(row.values()) for row in rows)


def labels_of(session: Session, pks: Iterable[int]) -> dict[int, list[dict[str, str]]]:
    """pk -> the `meta.security` codings of that resource's stored labels."""
    wanted = sorted(set(pks))
    result: dict[int, list[dict[str, str]]] = {}
    if not wanted:
        return result
    rows = session.execute(
        select(ResourceLabel.resource_pk, ResourceLabel.system, ResourceLabel.code)
        .where(among_in(session, ResourceLabel.resource_pk, wanted))
        .order_by(ResourceLabel.resource_pk, ResourceLabel.system, ResourceLabel.code)
    )
    for pk, system, code in rows:
        result.setdefault(pk, []).append({"system": system, "code": code})
    return result


def with_labels(content: dict[str, Any], codings: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """`content` with `codings` merged into `meta.security` after the sender's own, each
    (system, code) once; `content` itself is not changed."""
    if not codings:
        return content
    meta = dict(content.get("meta") or {})
    security = list(meta.get("security") or ())
    seen = {(c.get("system"), c.get("code")) for c in security if isinstance(c, Mapping)}
    for coding in codings:
        key = (coding["system"], coding["code"])
        if key not in seen:
            seen.add(key)
            security.append(dict(coding))
    meta["security"] = security
    return {**content, "meta": meta}


# A Patient has no coded content on the lists and none of the fields that name a Part 2
# program (_SOURCE_FIELDS, _ENCOUNTER_FIELDS): its stored labels can only be the sender's
# own, which its content carries already. Pages of Patients skip the lookup (a Patient
# search is the commonest request a clinician sends).
_SENDER_LABELS_ONLY = frozenset({"Patient"})


def labelled(session: Session, rows: Sequence[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The contents of (pk, content) pairs with their stored labels merged, in order."""
    found = labels_of(
        session,
        (pk for pk, content in rows if content.get("resourceType") not in _SENDER_LABELS_ONLY),
    )
    return [with_labels(content, found.get(pk, ())) for pk, content in rows]


def versions_labelled(
    session: Session, versions: Sequence[tuple[int, int, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """(pk, version, content) of stored versions as `vread` and history show them. The
    current version has the stored labels; a past one the labels of its own codes (a code
    it had and the current version dropped still labels it) with the resource's current
    Part 2 flag, computed here because only the current version's labels are kept."""
    pks = sorted({pk for pk, _, _ in versions})
    if not pks:
        return []
    current = records.current_versions(session, pks)
    flags = session.execute(
        select(LabelState.resource_pk, LabelState.part2).where(
            among_in(session, LabelState.resource_pk, pks)
        )
    )
    part2: dict[int, bool] = {pk: bool(flag) for pk, flag in flags}
    stored = labels_of(session, (pk for pk, version, _ in versions if current.get(pk) == version))
    shown = []
    for pk, version, content in versions:
        if current.get(pk) == version:
            codings = stored.get(pk, [])
        else:
            found = labels_for(content, part2_program=part2.get(pk, False))
            codings = [{"system": label.system, "code": label.code} for label in sorted(found)]
        shown.append(with_labels(content, codings))
    return shown


def stale_pks(session: Session, *, after: int, limit: int, version: str | None = None) -> list[int]:
    """Up to `limit` pks above `after` of live resources labelled under another lists
    version than `version` (the shipped one by default), or never labelled."""
    current = version or lists_version()
    labelled = select(LabelState.resource_pk).where(LabelState.lists_version == current)
    return records.live_pks(session, after=after, limit=limit, excluding=labelled)


def relabel_pks(session: Session, pks: Sequence[int], *, lists: CodeLists | None = None) -> int:
    """Recompute the labels of the resources `pks` from their current content; no version."""
    if not pks:
        return 0
    rows = records.rows_for_update(session, pks)
    label_written(session, resources=[Written(*row) for row in rows], lists=lists)
    session.flush()
    return len(rows)


def relabel(session: Session, *, batch: int = 500, lists: CodeLists | None = None) -> int:
    """Relabel every stale resource, a pk range at a time; returns how many."""
    version = (lists or shipped_lists()).version
    done, after = 0, 0
    while pks := stale_pks(session, after=after, limit=batch, version=version):
        done += relabel_pks(session, pks, lists=lists)
        after = pks[-1]
    return done


def mark_stale(session: Session, *, owner: str) -> None:
    """Forget the labelling of `owner`'s resources so the next relabel recomputes them
    (its Part 2 programs changed)."""
    session.execute(delete(LabelState).where(LabelState.resource_pk.in_(records.owned_pks(owner))))


def add_part2_program(
    session: Session, *, owner: str, reference: str, actor: str, now: dt.datetime
) -> bool:
    """Register `reference` (`Organization/x` or `HealthcareService/x`) of hospital system
    `owner` as a Part 2 program; False if it already was. Its records are marked stale."""
    if session.get(Part2Program, (owner, reference)) is not None:
        return False
    session.add(Part2Program(owner=owner, reference=reference, created_at=now, created_by=actor))
    audit.append(
        session,
        event_type="security-admin",
        subtype="part2-program",
        action="C",
        agent=actor,
        entities=[f"{owner}:{reference}"],
    )
    mark_stale(session, owner=owner)
    session.flush()
    return True


def organization_directory(session: Session) -> dict[str, str | None]:
    """`Organization/<id>` of each stored Organization to the Organization it is `partOf`
    (a hospital to its country's), None for a country: what a Consent's actors may name."""
    directory: dict[str, str | None] = {}
    for res_id, content in records.contents(session, "Organization"):
        parent = _relative(content.get("partOf"))
        directory[f"Organization/{res_id}"] = parent
    return directory


def validate_consent(session: Session, resource: Mapping[str, Any]) -> None:
    """Puente's rules for a Consent the R4B model already accepted (consent.validation),
    against the stored Organization directory: InvalidConsent (422), one issue per rule."""
    from consent.errors import InvalidConsent
    from consent.validation import validate_consent as broken_rules

    issues = broken_rules(resource, organizations=organization_directory(session))
    if issues:
        raise InvalidConsent(issues=issues)


def labelled_pks(tokens: Sequence[tuple[str | None, str | None]] | None) -> Select[Any]:
    """The pks of the stored resources carrying one of the labels (`_security`): each a
    (system, code) where a None system is any system, "" none, a None code any code of
    the system; `tokens` None: any label at all."""
    statement = select(ResourceLabel.resource_pk)
    if tokens is None:
        return statement
    alternatives = []
    for system, code in tokens:
        parts = []
        if system:
            parts.append(ResourceLabel.system == system)
        elif system == "":  # every label has a system
            parts.append(false())
        if code is not None:
            parts.append(ResourceLabel.code == code)
        alternatives.append(and_(*parts) if parts else true())
    return statement.where(or_(*alternatives))
