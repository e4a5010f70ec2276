"""Batch and transaction Bundles (FHIR R4 3.1.0.11): `POST /fhir` with a Bundle.

A transaction is all or nothing: its entries run in the spec's order (DELETE, POST,
PUT/PATCH, GET), new resources get their ids before anything is written so that
`urn:uuid:` references between entries resolve, conditional references
(`Patient?identifier=...`) resolve against the caller's own resources, and the first
failing entry rolls everything back and is named in the error. Batch entries are
independent: each succeeds or fails alone, in a savepoint of its own.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session

from exchange import service, store, writes
from puente.auth.caller import Caller
from puente.errors import (
    InvalidRequest,
    Issue,
    NotFound,
    PreconditionFailed,
    PuenteError,
)
from puente.fhir.responses import version_from_etag
from puente.fhir.search import conditional_criteria
from translation.i18n import N_

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# R4 3.1.0.11.2: deletes, then creates, then updates and patches, then reads.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3}
MAX_ENTRIES = 5000
JSON_PATCH = "application/json-patch+json"


@dataclass
class Entry:
    index: int
    method: str
    resource_type: str
    res_id: str | None
    criteria: list[tuple[str, str]] | None  # a conditional url's query
    query: list[tuple[str, str]]  # a GET's search parameters
    version: int | None  # GET .../_history/n
    resource: dict[str, Any] | None
    full_url: str | None
    if_match: int | None
    if_none_exist: list[tuple[str, str]] | None
    creates: bool = False  # a conditional update that matched nothing: a create


@dataclass
class Outcome:
    """One response entry: `status` as R4 writes it ("201 Created")."""

    status: str
    resource: dict[str, Any] | None = None
    location: str | None = None
    version: int | None = None
    last_modified: Any = None
    issues: list[Issue] = field(default_factory=list)
    written: writes.Written | None = None


class EntryFailed(PuenteError):
    """A transaction entry failed: its error, naming the entry."""

    def __init__(self, index: int, cause: PuenteError) -> None:
        prefix = f"Bundle.entry[{index}]"
        issues = [
            Issue(
                i.message_key,
                i.params,
                code=i.code,
                severity=i.severity,
                expression=tuple(f"{prefix}.resource.{e.split('.', 1)[-1]}" for e in i.expression)
                or (prefix,),
            )
            for i in cause.issues
        ]
        issues.append(
            Issue(N_("error.transaction_entry_failed"), {"index": index}, code="processing")
        )
        super().__init__(issues=issues, headers=cause.headers)
        self.status_code = cause.status_code  # type: ignore[misc]


def _if_match(raw: Any) -> int | None:
    return version_from_etag(raw) if isinstance(raw, str) else None


def _relative(url: str, fhir_base: str) -> str:
    if url.startswith(fhir_base):
        url = url[len(fhir_base) :]
    return url.lstrip("/")


def _parse_entry(index: int, raw: Any, fhir_base: str) -> Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise InvalidRequest(N_("error.bundle_entry_request"), index=index)
    request = raw["request"]
    method = str(request.get("method", "")).upper()
    url = request.get("url")
    if method not in METHODS or not isinstance(url, str) or not url:
        raise InvalidRequest(N_("error.bundle_entry_request"), index=index)
    path, _, query_text = _relative(url, fhir_base).partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise InvalidRequest(N_("error.bundle_entry_request"), index=index)
    query = parse_qsl(query_text, keep_blank_values=True)
    res_id = parts[1] if len(parts) >= 2 else None
    version = None
    if len(parts) == 4 and parts[2] == "_history" and parts[3].isdigit():
        version = int(parts[3])
    elif len(parts) > 2:
        raise InvalidRequest(N_("error.bundle_entry_request"), index=index)
    resource = raw.get("resource")
    if method in ("POST", "PUT", "PATCH") and not isinstance(resource, dict):
        raise InvalidRequest(N_("error.bundle_entry_resource"), index=index)
    if_none_exist = request.get("ifNoneExist")
    return Entry(
        index=index,
        method=method,
        resource_type=parts[0],
        res_id=res_id,
        criteria=query if query and res_id is None and method in ("PUT", "DELETE") else None,
        query=query,
        version=version,
        resource=resource if isinstance(resource, dict) else None,
        full_url=raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None,
        if_match=_if_match(request.get("ifMatch")),
        if_none_exist=(
            conditional_criteria(if_none_exist) if isinstance(if_none_exist, str) else None
        ),
    )


def parse(bundle: Any, fhir_base: str) -> tuple[str, list[Entry]]:
    """The Bundle's type and its entries; 400 for anything that is not a batch or
    transaction Bundle."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRequest(N_("error.bundle_expected"))
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise InvalidRequest(N_("error.bundle_type"))
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
        raise InvalidRequest(N_("error.bundle_too_large"), limit=MAX_ENTRIES)
    return kind, [_parse_entry(i, raw, fhir_base) for i, raw in enumerate(raw_entries)]


def _patch_document(entry: Entry) -> Any:
    """A PATCH entry's JSON Patch: a Binary of `application/json-patch+json` (R4 3.1.0.7.1)."""
    binary = entry.resource or {}
    if binary.get("resourceType") != "Binary" or binary.get("contentType") != JSON_PATCH:
        raise InvalidRequest(N_("error.bundle_patch_binary"), index=entry.index)
    try:
        return json.loads(base64.b64decode(str(binary.get("data", "")), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(N_("error.bundle_patch_binary"), index=entry.index) from exc


# --- references between entries ---------------------------------------------------


def _resolve_target(session: Session, code: str, entry: Entry) -> None:
    """Give a creating entry its id now; a conditional create or update that matches
    resolves to the match (R4 3.1.0.11.2: ids are known before references are rewritten)."""
    if entry.method == "POST":
        entry.res_id = store.new_id()
        if entry.if_none_exist is not None:
            found = writes.own_matches(session, code, entry.resource_type, entry.if_none_exist)
            if found:
                entry.res_id = found[0].res_id
    elif entry.method == "PUT" and entry.criteria is not None:
        found = writes.own_matches(session, code, entry.resource_type, entry.criteria)
        entry.res_id = found[0].res_id if found else store.new_id()
        entry.creates = not found


def _hold_all(session: Session, code: str, entries: list[Entry]) -> None:
    """The conditional entries' locks (`writes.hold_criteria`), all before any entry runs
    and in one order, so that two Bundles with the same criteria queue instead of
    deadlocking."""
    held: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for entry in entries:
        criteria = entry.if_none_exist if entry.method == "POST" else entry.criteria
        if entry.method in ("POST", "PUT") and criteria is not None:
            held.add((entry.resource_type, tuple(sorted(criteria))))
    for resource_type, pairs in sorted(held):
        writes.hold_criteria(session, code, resource_type, list(pairs))


def _resolve_targets(session: Session, caller: Caller, entries: list[Entry]) -> dict[str, str]:
    """fullUrl -> `Type/id` for every entry that creates or names a resource."""
    targets: dict[str, str] = {}
    _hold_all(session, caller.org_code or "", entries)
    for entry in entries:
        try:
            _resolve_target(session, caller.org_code or "", entry)
        except PuenteError as exc:
            raise EntryFailed(entry.index, exc) from exc
        if entry.full_url and entry.res_id and entry.method in ("POST", "PUT"):
            targets[entry.full_url] = f"{entry.resource_type}/{entry.res_id}"
    return targets


def _conditional_reference(session: Session, caller: Caller, reference: str) -> str:
    resource_type, _, query_text = reference.partition("?")
    criteria = parse_qsl(query_text, keep_blank_values=True)
    found = writes.own_matches(session, caller.org_code or "", resource_type, criteria)
    if not found:
        raise NotFound(N_("error.conditional_reference_unresolved"), resource_type=resource_type)
    return f"{resource_type}/{found[0].res_id}"


def _rewrite(node: Any, rewrite: Callable[[str], str | None]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, rewrite) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _rewrite(value, rewrite) for key, value in node.items()}
    reference = result.get("reference")
    if isinstance(reference, str):
        replaced = rewrite(reference)
        if replaced is not None:
            result["reference"] = replaced
    return result


def _link(session: Session, caller: Caller, entries: list[Entry], targets: dict[str, str]) -> None:
    def rewrite(reference: str) -> str | None:
        if reference in targets:
            return targets[reference]
        if reference.startswith("urn:uuid:"):
            raise InvalidRequest(N_("error.bundle_reference_unresolved"))
        if "?" in reference and not reference.startswith(("http:", "https:")):
            return _conditional_reference(session, caller, reference)
        return None

    for entry in entries:
        if entry.resource is not None and entry.method in ("POST", "PUT"):
            try:
                entry.resource = _rewrite(entry.resource, rewrite)
            except PuenteError as exc:
                raise EntryFailed(entry.index, exc) from exc


# --- running the entries ------------------------------------------------------------


def _status(written: writes.Written) -> str:
    if written.created:
        return "201 Created"
    return "200 OK"


def _run(session: Session, caller: Caller, entry: Entry) -> Outcome:
    rt = entry.resource_type
    match entry.method:
        case "POST":
            written = writes.create(
                session,
                caller,
                resource_type=rt,
                body=entry.resource,
                if_none_exist=entry.if_none_exist,
                assigned_id=entry.res_id,
            )
        case "PUT" if entry.criteria is not None and entry.res_id is None:
            # A batch resolves nothing beforehand: the ordinary conditional update.
            written = writes.conditional_update(
                session,
                caller,
                resource_type=rt,
                criteria=entry.criteria,
                body=entry.resource,
                if_match=entry.if_match,
            )
        case "PUT" if entry.creates:
            # R4 3.1.0.4.3: a conditional update that matches nothing creates.
            written = writes.create(
                session, caller, resource_type=rt, body=entry.resource, assigned_id=entry.res_id
            )
        case "PUT":
            body = {**(entry.resource or {}), "id": entry.res_id}
            written = writes.update(
                session,
                caller,
                resource_type=rt,
                res_id=str(entry.res_id),
                body=body,
                if_match=entry.if_match,
            )
        case "PATCH":
            if entry.res_id is None:
                raise InvalidRequest(N_("error.bundle_entry_request"), index=entry.index)
            written = writes.patch(
                session,
                caller,
                resource_type=rt,
                res_id=entry.res_id,
                document=_patch_document(entry),
                if_match=entry.if_match,
            )
        case "DELETE":
            if entry.criteria is not None:
                written = writes.conditional_delete(
                    session, caller, resource_type=rt, criteria=entry.criteria
                )
            elif entry.res_id is not None:
                written = writes.delete(
                    session,
                    caller,
                    resource_type=rt,
                    res_id=entry.res_id,
                    if_match=entry.if_match,
                )
            else:
                raise InvalidRequest(N_("error.bundle_entry_request"), index=entry.index)
            return Outcome("204 No Content", written=written)
        case _:
            return _read(session, caller, entry)
    return _written_outcome(written)


def _written_outcome(written: writes.Written) -> Outcome:
    return Outcome(
        _status(written),
        resource=written.resource,
        location=f"{written.resource_type}/{written.res_id}/_history/{written.version}",
        version=written.version,
        last_modified=written.last_updated,
        written=written,
    )


def _read(session: Session, caller: Caller, entry: Entry) -> Outcome:
    rt = entry.resource_type
    if entry.res_id is None:
        parsed = service.parse(rt, entry.query, lenient=False)
        result = service.search(session, caller, resource_type=rt, request=parsed)
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": result.total,
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in result.resources],
        }
        return Outcome("200 OK", resource=bundle)
    if entry.version is not None:
        found = service.vread(
            session, caller, resource_type=rt, res_id=entry.res_id, version=entry.version
        )
    else:
        found = service.read(session, caller, resource_type=rt, res_id=entry.res_id)
    return Outcome(
        "200 OK", resource=found.resource, version=found.version, last_modified=found.last_updated
    )


def _failure(cause: PuenteError) -> Outcome:
    phrase = {
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        410: "Gone",
        412: "Precondition Failed",
        422: "Unprocessable Entity",
    }
    status = cause.status_code
    return Outcome(f"{status} {phrase.get(status, '')}".strip(), issues=cause.issues)


def run_transaction(session: Session, caller: Caller, entries: list[Entry]) -> list[Outcome]:
    """All or nothing: the first failure raises `EntryFailed`; the caller rolls back."""
    try:
        targets = _resolve_targets(session, caller, entries)
    except PreconditionFailed as exc:
        raise EntryFailed(
            next(e.index for e in entries if e.method in ("POST", "PUT")), exc
        ) from exc
    _link(session, caller, entries, targets)
    outcomes: dict[int, Outcome] = {}
    for run in _runs(sorted(entries, key=lambda e: ORDER[e.method])):
        if _plain_create(run[0]):
            outcomes.update(_create_run(session, caller, run))
            continue
        (entry,) = run
        try:
            outcomes[entry.index] = _run(session, caller, entry)
        except PuenteError as exc:
            raise EntryFailed(entry.index, exc) from exc
    return [outcomes[e.index] for e in entries]


def _plain_create(entry: Entry) -> bool:
    """A POST without If-None-Exist: it reads nothing the entries before it wrote."""
    return entry.method == "POST" and entry.if_none_exist is None


def _runs(entries: list[Entry]) -> list[list[Entry]]:
    """`entries` in their order, each plain create run together with the plain creates
    next to it, every other entry alone."""
    runs: list[list[Entry]] = []
    for entry in entries:
        if runs and _plain_create(entry) and _plain_create(runs[-1][-1]):
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


def _create_run(session: Session, caller: Caller, run: list[Entry]) -> dict[int, Outcome]:
    items = [writes.NewResource(e.resource_type, e.resource, e.res_id) for e in run]
    try:
        written = writes.create_all(session, caller, items)
    except writes.CreateFailed as exc:
        raise EntryFailed(run[exc.position].index, exc.cause) from exc
    return {entry.index: _written_outcome(w) for entry, w in zip(run, written, strict=True)}


def run_batch(session: Session, caller: Caller, entries: list[Entry]) -> list[Outcome]:
    """Each entry alone, in its own savepoint; `urn:uuid` references are not resolved
    across batch entries (R4 3.1.0.11.1). The conditional entries' locks are taken first,
    as a transaction takes them, so two batches queue rather than deadlock."""
    _hold_all(session, caller.org_code or "", entries)
    outcomes = []
    for entry in entries:
        try:
            with session.begin_nested():
                outcomes.append(_run(session, caller, entry))
        except PuenteError as exc:
            outcomes.append(_failure(exc))
    return outcomes
