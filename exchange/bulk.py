"""Bulk import of NDJSON (one resource a line) and Bundle files through the ordinary writes.

Idempotent: a resource with an id is written by PUT semantics (create inside the writer's
namespace, or a new version only if its content changed); one without an id is created
unless the writer already holds a resource of that type with one of its identifiers.
Importing a file twice therefore leaves one copy, and so does re-running an import that
died half way. A bad line is reported with its file and line number and skipped; every
good line is stored. Files are taken in reference order (patients before their records).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from exchange import store, writes
from puente.auth.caller import Caller
from puente.db import is_transient, refresh_statistics
from puente.errors import InvalidResource, Issue, PuenteError
from translation.i18n import N_

# Referenced types first: a record's subject, performer or location is loaded before it.
REFERENCE_ORDER = (
    "Organization",
    "Location",
    "HealthcareService",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "Observation",
    "Procedure",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
    "DiagnosticReport",
    "DocumentReference",
    "Provenance",
)
log = logging.getLogger("puente.import")
_RANK = {name: rank for rank, name in enumerate(REFERENCE_ORDER)}
SUFFIXES = (".ndjson", ".json")
# An import of this many resources (written, by `puente import`'s count; lines, by an
# `$import` job's) refreshes the planner's statistics at its end.
ANALYZE_AFTER = 5_000


@dataclass(frozen=True)
class SourceLine:
    source: str  # the file's name, never its content
    line: int
    text: str


@dataclass(frozen=True)
class LineError:
    source: str
    line: int
    issues: list[Issue]


@dataclass
class ImportReport:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[LineError] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return self.created + self.updated + self.unchanged


def after_load(written: int) -> bool:
    """What an import does once its lines are written: one of `ANALYZE_AFTER` resources
    or more refreshes the database's statistics (`puente.db.refresh_statistics`); whether
    it did. The lines are committed by then: a failure here is logged, not raised."""
    if written < ANALYZE_AFTER:
        return False
    try:
        return refresh_statistics()
    except SQLAlchemyError:
        log.warning("statistics_not_refreshed", exc_info=True)
        return False


def lost_to_another(exc: BaseException) -> bool:
    """Whether a batch failed only because a concurrent transaction got in its way: a
    deadlock or serialization failure, SQLite's lock, or a resource of the batch created
    by another meanwhile. The batch rolled back whole; run again, it succeeds (and finds
    what the other stored, which it updates or leaves unchanged)."""
    return is_transient(exc) or store.lost_create_race(exc)


def transient_report(lines: list[SourceLine]) -> ImportReport:
    """What to report for a batch that kept losing to concurrent writers however often it
    was retried: every line read and refused as transient, nothing stored. Posting those
    lines again stores them (the import is idempotent)."""
    issue = Issue(N_("error.import_line_transient"), code="transient")
    return ImportReport(
        read=len(lines),
        errors=[LineError(line.source, line.line, [issue]) for line in lines],
    )


def _rank(resource_type: str) -> int:
    return _RANK.get(resource_type, len(_RANK))


def files_in(path: Path) -> list[Path]:
    """A file, or the NDJSON and JSON files of a folder (not hidden ones), sorted."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
    )


def _resource_type(text: str) -> str:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return ""
    return parsed.get("resourceType", "") if isinstance(parsed, dict) else ""


def read_file(path: Path) -> list[SourceLine]:
    """The resources of one file with their line numbers: NDJSON lines, or a Bundle's
    entries (numbered by entry, from 1)."""
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if path.suffix == ".json" and stripped.startswith("{") and '"Bundle"' in stripped[:4000]:
        try:
            bundle = json.loads(text)
        except json.JSONDecodeError:
            return [SourceLine(path.name, 1, text)]
        if isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle":
            return [
                SourceLine(path.name, n, json.dumps(entry.get("resource")))
                for n, entry in enumerate(bundle.get("entry") or [], start=1)
                if isinstance(entry, dict)
            ]
    return [
        SourceLine(path.name, n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def in_reference_order_lines(lines: Iterable[SourceLine]) -> list[SourceLine]:
    """Referenced types first; the given order otherwise (the sort is stable)."""
    return sorted(lines, key=lambda line: _rank(_resource_type(line.text)))


def in_reference_order_parsed(
    lines: Iterable[SourceLine],
) -> tuple[list[SourceLine], list[Any]]:
    """`in_reference_order_lines`, and beside each line its JSON (None when it is not
    JSON) for `import_lines`: each line parsed once."""
    read = list(lines)
    surveyed = [survey(line.text) for line in read]
    order = sorted(range(len(read)), key=lambda i: surveyed[i][1])
    return [read[i] for i in order], [surveyed[i][0] for i in order]


def in_reference_order(paths: Iterable[Path]) -> list[SourceLine]:
    """Every line of every file, referenced types first; file and line order otherwise."""
    return in_reference_order_lines(line for path in paths for line in read_file(path))


def _identifier_criteria(resource: dict[str, Any]) -> list[tuple[str, str]]:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            return [("identifier", f"{identifier['system']}|{identifier['value']}")]
    return []


def _parse(line: SourceLine, parsed: Any = None) -> dict[str, Any]:
    """The line's resource; `parsed` is its JSON when the caller parsed it already (None:
    parse the text here)."""
    if parsed is not None:
        resource = parsed
    else:
        try:
            resource = json.loads(line.text)
        except json.JSONDecodeError as exc:
            raise InvalidResource(N_("error.import_line_not_json")) from exc
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InvalidResource(N_("error.resource_type_missing"))
    return resource


def _write(session: Session, caller: Caller, resource: dict[str, Any]) -> writes.Written:
    """One parsed line in its own savepoint: a refused line leaves the batch intact."""
    resource_type = resource["resourceType"]
    with session.begin_nested():
        if resource.get("id"):
            return writes.update(
                session,
                caller,
                resource_type=resource_type,
                res_id=str(resource["id"]),
                body=resource,
            )
        return writes.create(
            session,
            caller,
            resource_type=resource_type,
            body=resource,
            if_none_exist=_identifier_criteria(resource) or None,
        )


def _count(report: ImportReport, written: writes.Written) -> None:
    _tally(report, created=written.created, changed=written.changed)


def _tally(report: ImportReport, *, created: bool, changed: bool) -> None:
    if created:
        report.created += 1
    elif changed:
        report.updated += 1
    else:
        report.unchanged += 1


def import_line(session: Session, caller: Caller, line: SourceLine, report: ImportReport) -> None:
    """Write one line in its own savepoint: a refused line leaves the batch intact."""
    report.read += 1
    try:
        written = _write(session, caller, _parse(line))
    except PuenteError as exc:
        report.errors.append(LineError(line.source, line.line, exc.issues))
        return
    _count(report, written)


@dataclass(frozen=True)
class _Checked:
    """A line with an id after the checks a PUT makes before reading the store, or the
    error they raised."""

    line: SourceLine
    code: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    error: PuenteError | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.content["resourceType"], self.content["id"]


def _write_run(session: Session, caller: Caller, run: list[_Checked], report: ImportReport) -> None:
    """Lines with ids and no two of one resource, as `import_line` would write them one by
    one: their rows read in one query, the new ones inserted together. Every refusal
    happens before anything of its line is written, so no savepoint is needed."""
    found = store.load_many(session, (c.key for c in run if c.error is None), lock=True)
    new: list[dict[str, Any]] = []
    for checked in run:
        error, stored = checked.error, None
        if error is None:
            stored = found.get(checked.key)
            try:
                writes.check_put(caller, checked.code, checked.content, stored, session=session)
            except PuenteError as exc:
                error = exc
        if error is not None:
            report.errors.append(LineError(checked.line.source, checked.line.line, error.issues))
        elif stored is None:
            new.append(checked.content)
            report.created += 1
        else:
            created = stored.deleted
            _, changed = store.write(
                session,
                stored=stored,
                owner=checked.code,
                owner_country=caller.country,
                content=checked.content,
                method="PUT",
            )
            _tally(report, created=created, changed=changed)
    store.create_many(
        session,
        owner=caller.org_code or "",
        owner_country=caller.country,
        contents=new,
        method="PUT",
    )
    run.clear()


def _check(caller: Caller, line: SourceLine, resource: dict[str, Any]) -> _Checked:
    try:
        code, content = writes.checked_put(
            caller,
            resource_type=resource["resourceType"],
            res_id=str(resource["id"]),
            body=resource,
        )
    except PuenteError as exc:
        return _Checked(line, error=exc)
    return _Checked(line, code, content)


def import_lines(
    session: Session,
    caller: Caller,
    lines: Iterable[SourceLine],
    report: ImportReport,
    parsed: Iterable[Any] | None = None,
) -> None:
    """Every line as `import_line` writes it, in order. Runs of lines with ids are written
    together (`_write_run`); a line without one, or a second line of one resource, first
    writes the run before it. `parsed`, when given, holds each line's JSON as `survey`
    parsed it (None: parse the text), so that no line is parsed twice."""
    run: list[_Checked] = []
    keys: set[tuple[str, str]] = set()
    values = iter(parsed) if parsed is not None else None
    for line in lines:
        report.read += 1
        try:
            resource = _parse(line, next(values) if values is not None else None)
        except PuenteError as exc:
            run.append(_Checked(line, error=exc))
            continue
        if not resource.get("id"):
            _write_run(session, caller, run, report)
            keys.clear()
            try:
                _count(report, _write(session, caller, resource))
            except PuenteError as exc:
                report.errors.append(LineError(line.source, line.line, exc.issues))
            continue
        checked = _check(caller, line, resource)
        if checked.error is None:
            if checked.key in keys:
                _write_run(session, caller, run, report)
                keys.clear()
            keys.add(checked.key)
        run.append(checked)
    _write_run(session, caller, run, report)


def _touches(resource: Any) -> list[int]:
    """What a line's write may read or write besides its own new row: its (type, id), and
    its identifiers (a line without an id matches stored resources on one); each as the
    hash of that tuple. A process forked from the importing one hashes alike, and a
    multi-process import sends these to the parent while both writers wait: a hash pickles
    to a fraction of the tuple. Two different tuples with one hash only put their lines in
    one batch, which is always safe."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return []
    resource_type = resource["resourceType"]
    found: list[int] = []
    if resource.get("id"):
        found.append(hash(("id", resource_type, str(resource["id"]))))
    identifiers = resource.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            token = f"{identifier['system']}|{identifier['value']}".casefold()
            found.append(hash(("identifier", resource_type, token)))
    return found


def _groups(touches: list[list[int]]) -> list[int]:
    """For each line, the first line it shares a resource or an identifier with, directly
    or through others (union-find)."""
    root = list(range(len(touches)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    first: dict[int, int] = {}
    for position, tokens in enumerate(touches):
        for token in tokens:
            other = first.setdefault(token, position)
            a, b = find(position), find(other)
            root[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(touches))]


def survey(text: str) -> tuple[Any, int, list[int]]:
    """A line's JSON (None when it is not JSON), its reference rank, and what its write may
    touch (`_touches`): all `arrange` needs, from the one parse of the line."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None, _rank(""), []
    if not isinstance(parsed, dict):
        return parsed, _rank(""), []
    return parsed, _rank(parsed.get("resourceType", "")), _touches(parsed)


def arrange(
    ranks: list[int],
    touches: list[list[int]],
    size: int,
    holders: list[int] | None = None,
) -> list[dict[int, list[list[int]]]]:
    """Batches of about `size` lines: per reference rank, per holder (the process that
    parsed the line; all 0 without `holders`), lists of line positions.

    Lines are taken in reference order (rank, then position). Lines that could meet (one
    resource, or a shared identifier) are in one batch in that order, with the holder of
    the first of them, so the batches of one rank can be imported at once, in any order,
    and store what importing the lines one by one would.
    """
    order = sorted(range(len(ranks)), key=lambda p: (ranks[p], p))
    groups = _groups([touches[p] for p in order])
    members_by_rank: dict[int, dict[int, list[int]]] = {}
    for index, p in enumerate(order):
        members_by_rank.setdefault(ranks[p], {}).setdefault(groups[index], []).append(p)
    arranged: list[dict[int, list[list[int]]]] = []
    for rank in sorted(members_by_rank):
        per_holder: dict[int, list[list[int]]] = {}
        for members in members_by_rank[rank].values():
            packed = per_holder.setdefault(holders[members[0]] if holders else 0, [[]])
            if packed[-1] and len(packed[-1]) + len(members) > size:
                packed.append([])
            packed[-1].extend(members)
        arranged.append({h: [sorted(b) for b in batches] for h, batches in per_holder.items()})
    return arranged
