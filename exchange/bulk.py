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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from exchange import writes
from puente.auth.caller import Caller
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
_RANK = {name: rank for rank, name in enumerate(REFERENCE_ORDER)}
SUFFIXES = (".ndjson", ".json")


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


def in_reference_order(paths: Iterable[Path]) -> list[SourceLine]:
    """Every line of every file, referenced types first; file and line order otherwise."""
    return in_reference_order_lines(line for path in paths for line in read_file(path))


def _identifier_criteria(resource: dict[str, Any]) -> list[tuple[str, str]]:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            return [("identifier", f"{identifier['system']}|{identifier['value']}")]
    return []


def _parse(line: SourceLine) -> dict[str, Any]:
    try:
        resource = json.loads(line.text)
    except json.JSONDecodeError as exc:
        raise InvalidResource(N_("error.import_line_not_json")) from exc
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InvalidResource(N_("error.resource_type_missing"))
    return resource


def import_line(session: Session, caller: Caller, line: SourceLine, report: ImportReport) -> None:
    """Write one line in its own savepoint: a refused line leaves the batch intact."""
    report.read += 1
    try:
        resource = _parse(line)
        resource_type = resource["resourceType"]
        with session.begin_nested():
            if resource.get("id"):
                written = writes.update(
                    session,
                    caller,
                    resource_type=resource_type,
                    res_id=str(resource["id"]),
                    body=resource,
                )
            else:
                written = writes.create(
                    session,
                    caller,
                    resource_type=resource_type,
                    body=resource,
                    if_none_exist=_identifier_criteria(resource) or None,
                )
    except PuenteError as exc:
        report.errors.append(LineError(line.source, line.line, exc.issues))
        return
    if written.created:
        report.created += 1
    elif written.changed:
        report.updated += 1
    else:
        report.unchanged += 1


def import_lines(
    session: Session, caller: Caller, lines: Iterable[SourceLine], report: ImportReport
) -> None:
    for line in lines:
        import_line(session, caller, line, report)
