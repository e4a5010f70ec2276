"""The store's write interactions: create, update, patch, delete, and their conditional forms.

Hospital systems write, each as the owner of what it writes. Consents are also written by
people: a consent officer for its hospital's patients (owned by its hospital system) and a
patient for itself (owned by the pseudo-system `puente`); a system or an officer writes
Consents only for Patients its system owns, a patient only its own. Every Consent write
obeys Puente's Consent rules beyond the base ones (422, consent.service). Another system's resource
is answered as if it did not exist (404), except directory data (Organization), which every
caller sees and only its owner changes (403). Ids are server-assigned UUIDs, or chosen by the
writer inside its own namespace `<system code>-<anything>` (ARCHITECTURE.md, "Identity,
ownership and visibility").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer
from sqlalchemy import text
from sqlalchemy.orm import Session, object_session

from consent import service as labelling
from exchange import query, store
from exchange.models import PUENTE_OWNER, StoredResource
from exchange.resources import DIRECTORY_TYPES
from exchange.service import capability, parse
from exchange.validation import validate
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction, Role
from puente.errors import (
    Forbidden,
    Gone,
    InvalidRequest,
    Issue,
    NotFound,
    PreconditionFailed,
    PuenteError,
)
from translation.i18n import N_

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_IMMUTABLE_PATHS = ("/id", "/resourceType")


@dataclass(frozen=True)
class Written:
    """What a write left behind. `resource` is None after a delete."""

    resource_type: str
    res_id: str
    resource: dict[str, Any] | None
    version: int
    last_updated: dt.datetime
    created: bool = False  # a new resource (201)
    changed: bool = True  # a new version was written
    patients: tuple[str, ...] = ()  # whom the write concerns, for the audit trail


def _written_all(
    session: Session | None,
    rows: Sequence[StoredResource | store.Created],
    *,
    created: bool = False,
    changed: bool = True,
    before: dict[str, Any] | None = None,
) -> list[Written]:
    """What writing `rows` (stored rows, or a bulk write's) left behind: each shown with
    its stored labels (read in one query; none when the rows belong to no session) and
    naming the Patients it concerns (for a deleted row, those `before` concerned). The one
    way a write's result is built, for a single write and a transaction's creates alike."""
    contents = [(row.pk, row.content) for row in rows if row.content is not None]
    labelled = iter(
        labelling.labelled(session, contents) if session is not None else [c for _, c in contents]
    )
    written = []
    for row in rows:
        shown = next(labelled) if row.content is not None else None
        about = row.content if row.content is not None else before
        patients = tuple(patient_references(about, row.res_type, row.res_id))
        written.append(
            Written(
                row.res_type,
                row.res_id,
                shown,
                row.version,
                row.last_updated,
                created,
                changed,
                patients,
            )
        )
    return written


def _written(
    stored: StoredResource,
    *,
    created: bool = False,
    changed: bool = True,
    before: dict[str, Any] | None = None,
) -> Written:
    (written,) = _written_all(
        object_session(stored), [stored], created=created, changed=changed, before=before
    )
    return written


CONSENT = "Consent"


def _self_patient(caller: Caller) -> str | None:
    """`Patient/<id>` of a patient caller, None for everyone else."""
    user = caller.fhir_user
    if caller.role is Role.PATIENT and user and user.startswith("Patient/"):
        return user
    return None


def _writer(caller: Caller, resource_type: str, interaction: Interaction) -> str:
    """The owner of what the caller writes, after the role and scope checks (403): its
    hospital system, or `puente` for a patient's own Consents."""
    capability(resource_type)
    caller.require(resource_type, interaction)
    if caller.is_system and caller.org_code:
        return caller.org_code
    if resource_type == CONSENT:
        if caller.role is Role.CONSENT_OFFICER and caller.org_code:
            return caller.org_code
        if _self_patient(caller) is not None:
            return PUENTE_OWNER
        raise Forbidden(N_("error.consent_writers"))
    raise Forbidden(N_("error.writes_system_only"))


def _consent_patient(content: dict[str, Any] | None) -> str | None:
    """`Patient/<id>` a Consent is about (relative or absolute reference), or None."""
    value = (content or {}).get("patient")
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str):
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 and parts[-2] == "Patient" else None


def _checks_read_store(content: dict[str, Any]) -> bool:
    """Whether `_checked` reads the store for this content."""
    return content.get("resourceType") == CONSENT


def _checked(
    session: Session, caller: Caller, code: str, content: dict[str, Any]
) -> dict[str, Any]:
    """`content` once its type's checks that need the store pass: for a Consent, Puente's
    rules (422) and whose Consent it may be (403). A Patient another system owns is
    answered like one that does not exist."""
    if not _checks_read_store(content):
        return content
    labelling.validate_consent(session, content)
    patient = _consent_patient(content)
    if code == PUENTE_OWNER:
        if patient is None or patient != _self_patient(caller):
            raise Forbidden(N_("error.consent_patient_not_writable"))
        return content
    stored = store.load(session, "Patient", patient.removeprefix("Patient/")) if patient else None
    if stored is None or stored.deleted or stored.owner != code:
        raise Forbidden(N_("error.consent_patient_not_writable"))
    return content


def _owns(caller: Caller, code: str, stored: StoredResource) -> bool:
    """Whether the stored resource is the caller's to change: its system's; for a patient,
    only the current `puente` Consents about itself."""
    if stored.owner != code:
        return False
    if code != PUENTE_OWNER:
        return True
    # A deleted one has no patient left to compare: a patient creates anew instead.
    patient = _self_patient(caller)
    return patient is not None and _consent_patient(stored.content) == patient


def _scoped(caller: Caller, code: str, criteria: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A patient's conditional criteria narrowed to its own Consents: other patients'
    `puente` Consents must not change what happens."""
    patient = _self_patient(caller)
    if code == PUENTE_OWNER and patient is not None:
        return [*criteria, ("patient", patient)]
    return criteria


def check_id(res_id: str) -> None:
    if not ID_PATTERN.match(res_id):
        raise InvalidRequest(N_("error.id_invalid"))


def in_namespace(caller_code: str, res_id: str) -> bool:
    prefix = f"{caller_code}-"
    return res_id.startswith(prefix) and len(res_id) > len(prefix)


def _not_writable(resource_type: str, caller_code: str) -> InvalidRequest:
    # The same answer whether or not the id exists elsewhere: no existence oracle.
    return InvalidRequest(
        N_("error.id_not_writable"), resource_type=resource_type, prefix=f"{caller_code}-"
    )


def _own(
    session: Session, caller: Caller, caller_code: str, resource_type: str, res_id: str
) -> StoredResource:
    """The caller's own resource, locked for the write; 404 if it does not exist or is not
    visible, 403 for directory data another system owns."""
    stored = store.load(session, resource_type, res_id, lock=True)
    if stored is None or not _owns(caller, caller_code, stored):
        if stored is not None and stored.res_type in DIRECTORY_TYPES:
            raise Forbidden(N_("error.not_owner"), resource_type=resource_type)
        raise NotFound(resource_type=resource_type, res_id=res_id[:64])
    return stored


def check_version(stored: StoredResource | None, if_match: int | None) -> None:
    """`If-Match: W/"n"`: 412 unless version n is the current one (R4 3.1.0.5.3)."""
    if if_match is not None and (stored is None or stored.version != if_match):
        raise PreconditionFailed()


def own_matches(
    session: Session, caller_code: str, resource_type: str, criteria: list[tuple[str, str]]
) -> list[StoredResource]:
    """Up to two of the caller's own resources matching a conditional request's criteria.

    Conditional operations search only the caller's own system: a match elsewhere must not
    change what happens (ARCHITECTURE.md).
    """
    parsed = parse(resource_type, criteria, lenient=False)
    if not parsed.criteria:
        raise InvalidRequest(N_("error.conditional_no_criteria"))
    statement = query.filtered(resource_type, parsed, StoredResource.owner == caller_code)
    rows = session.scalars(query.ordered(statement, None).limit(2)).all()
    if len(rows) > 1:
        raise PreconditionFailed(N_("error.conditional_multiple"))
    return list(rows)


# pg_advisory_xact_lock's two-int key space ("PUNT"), apart from the one-bigint space the
# audit sealer's lock lives in.
_CONDITIONAL_LOCK_CLASS = 0x50554E54


def hold_criteria(
    session: Session, caller_code: str, resource_type: str, criteria: list[tuple[str, str]]
) -> None:
    """Serialise conditional writes of one system with the same criteria until the
    transaction ends, so that two simultaneous conditional creates (or conditional updates
    that create) cannot both find nothing and both create: the second waits, then finds
    the first's resource, as if the two had come one after the other (HAPI guards the same
    race with a unique index on the search URL and answers 409 instead)."""
    text_key = "\x00".join([caller_code, resource_type, *(f"{k}={v}" for k, v in sorted(criteria))])
    digest = hashlib.sha256(text_key.encode()).digest()
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(digest[:4], "big", signed=True)
        session.execute(
            text("SELECT pg_advisory_xact_lock(:class, :key)"),
            {"class": _CONDITIONAL_LOCK_CLASS, "key": key},
        )
        return
    # SQLite: a write statement takes the database's single write lock (waiting up to the
    # busy timeout), after which this transaction reads the newest committed state.
    session.execute(text("UPDATE resource SET version = version WHERE 1 = 0"))


def create(
    session: Session,
    caller: Caller,
    *,
    resource_type: str,
    body: Any,
    if_none_exist: list[tuple[str, str]] | None = None,
    assigned_id: str | None = None,
) -> Written:
    """POST: a new resource with a server-assigned id (a client's id is ignored, R4 3.1.0.6);
    with `If-None-Exist`, the caller's one existing match instead (200, no new version).

    `assigned_id` is an id the server chose beforehand: a transaction gives its new
    resources their ids before any is written, so that references between them resolve.
    """
    code = _writer(caller, resource_type, Interaction.CREATE)
    content = _checked(session, caller, code, validate(body, expected_type=resource_type))
    if if_none_exist is not None:
        if_none_exist = _scoped(caller, code, if_none_exist)
        hold_criteria(session, code, resource_type, if_none_exist)
        found = own_matches(session, code, resource_type, if_none_exist)
        if found:
            return _written(found[0], changed=False)
    stored, _ = store.write(
        session,
        stored=None,
        owner=code,
        owner_country=caller.country,
        content={**content, "id": assigned_id or store.new_id()},
        method="POST",
    )
    return _written(stored, created=True)


@dataclass(frozen=True)
class NewResource:
    """One POST of `create_all`: the body and, from a transaction, the id chosen for it."""

    resource_type: str
    body: Any
    assigned_id: str | None = None


class CreateFailed(Exception):
    """`create_all` refused the item at `position` (nothing of the call is to be kept)."""

    def __init__(self, position: int, cause: PuenteError) -> None:
        super().__init__(position)
        self.position = position
        self.cause = cause


def create_all(session: Session, caller: Caller, items: Sequence[NewResource]) -> list[Written]:
    """What `create` without If-None-Exist does for each item in turn, the writes made
    together: one statement per table for the lot, where a transaction Bundle made one per
    table per entry (measured: a 100-entry Bundle issued a thousand statements).

    An item whose checks read the store (a Consent's Patient) first has the items before it
    written, so it sees them as `create` would. The first refusal raises `CreateFailed`;
    what was written before it stays in the session, which the caller rolls back."""
    written: list[Written] = []
    pending: list[dict[str, Any]] = []
    pending_owner = ""

    def write_pending() -> None:
        created = store.create_many(
            session,
            owner=pending_owner,
            owner_country=caller.country,
            contents=pending,
            method="POST",
        )
        written.extend(_written_all(session, created, created=True))
        pending.clear()

    for position, item in enumerate(items):
        try:
            code = _writer(caller, item.resource_type, Interaction.CREATE)
            content = validate(item.body, expected_type=item.resource_type)
        except PuenteError as exc:
            raise CreateFailed(position, exc) from exc
        if pending and (code != pending_owner or _checks_read_store(content)):
            write_pending()
        try:
            content = _checked(session, caller, code, content)
        except PuenteError as exc:
            raise CreateFailed(position, exc) from exc
        pending_owner = code
        pending.append({**content, "id": item.assigned_id or store.new_id()})
    if pending:
        write_pending()
    return written


def update(
    session: Session,
    caller: Caller,
    *,
    resource_type: str,
    res_id: str,
    body: Any,
    if_match: int | None = None,
) -> Written:
    """PUT at an id: update the caller's own resource, or create one in its namespace."""
    code, content = checked_put(caller, resource_type=resource_type, res_id=res_id, body=body)
    return _put(session, caller, code, content, if_match)


def checked_put(
    caller: Caller, *, resource_type: str, res_id: str, body: Any
) -> tuple[str, dict[str, Any]]:
    """What a PUT at an id checks before it reads the store: the writer's code and the
    validated content."""
    code = _writer(caller, resource_type, Interaction.UPDATE)
    check_id(res_id)
    content = validate(body, expected_type=resource_type)
    if "id" not in content:
        raise InvalidRequest(N_("error.id_missing"))
    if content["id"] != res_id:
        raise InvalidRequest(N_("error.id_mismatch"))
    return code, content


def check_put(
    caller: Caller,
    code: str,
    content: dict[str, Any],
    stored: StoredResource | None,
    if_match: int | None = None,
    *,
    session: Session | None = None,
) -> None:
    """Whether the caller may PUT `content` over `stored` (its current row, or None).

    A Consent's checks read the store: without a `session` (nor a stored row to take it
    from) a Consent is refused rather than written unchecked."""
    resource_type, res_id = content["resourceType"], content["id"]
    if resource_type == CONSENT:
        reader = session or (object_session(stored) if stored is not None else None)
        if reader is None:
            raise InvalidRequest(N_("error.consent_api_only"))
        _checked(reader, caller, code, content)
    if stored is not None and not _owns(caller, code, stored):
        raise _not_writable(resource_type, code)
    if stored is None:
        if not in_namespace(code, res_id):
            raise _not_writable(resource_type, code)
        caller.require(resource_type, Interaction.CREATE)
    check_version(stored, if_match)


def _put(
    session: Session, caller: Caller, code: str, content: dict[str, Any], if_match: int | None
) -> Written:
    stored = store.load(session, content["resourceType"], content["id"], lock=True)
    check_put(caller, code, content, stored, if_match, session=session)
    created = stored is None or stored.deleted
    row, changed = store.write(
        session,
        stored=stored,
        owner=code,
        owner_country=caller.country,
        content=content,
        method="PUT",
    )
    return _written(row, created=created, changed=changed)


def conditional_update(
    session: Session,
    caller: Caller,
    *,
    resource_type: str,
    criteria: list[tuple[str, str]],
    body: Any,
    if_match: int | None = None,
) -> Written:
    """PUT [type]?criteria (R4 3.1.0.4.3): no match creates, one match is updated."""
    code = _writer(caller, resource_type, Interaction.UPDATE)
    content = validate(body, expected_type=resource_type)
    criteria = _scoped(caller, code, criteria)
    hold_criteria(session, code, resource_type, criteria)
    found = own_matches(session, code, resource_type, criteria)
    if found:
        if content.get("id", found[0].res_id) != found[0].res_id:
            raise InvalidRequest(N_("error.id_mismatch"))
        return _put(session, caller, code, {**content, "id": found[0].res_id}, if_match)
    if "id" in content:
        check_id(content["id"])
        return _put(session, caller, code, content, if_match)
    caller.require(resource_type, Interaction.CREATE)
    check_version(None, if_match)
    content = _checked(session, caller, code, content)
    stored, _ = store.write(
        session,
        stored=None,
        owner=code,
        owner_country=caller.country,
        content={**content, "id": store.new_id()},
        method="PUT",
    )
    return _written(stored, created=True)


def _patch_operations(document: Any) -> jsonpatch.JsonPatch:
    if not isinstance(document, list) or not all(isinstance(op, dict) for op in document):
        raise InvalidRequest(N_("error.patch_invalid"))
    for operation in document:
        for key in ("path", "from"):
            path = operation.get(key)
            if isinstance(path, str) and any(
                path == p or path.startswith(p + "/") for p in _IMMUTABLE_PATHS
            ):
                raise InvalidRequest(
                    issues=[
                        Issue(
                            N_("error.patch_immutable"),
                            {"path": path.split("/")[1]},
                            expression=(path.split("/")[1],),
                        )
                    ]
                )
    try:
        return jsonpatch.JsonPatch(document)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise InvalidRequest(N_("error.patch_invalid")) from exc


def patch(
    session: Session,
    caller: Caller,
    *,
    resource_type: str,
    res_id: str,
    document: Any,
    if_match: int | None = None,
) -> Written:
    """PATCH with a JSON Patch (RFC 6902); the result is validated like any write."""
    code = _writer(caller, resource_type, Interaction.UPDATE)
    operations = _patch_operations(document)
    stored = _own(session, caller, code, resource_type, res_id)
    if stored.deleted or stored.content is None:
        raise Gone(resource_type=resource_type)
    check_version(stored, if_match)
    try:
        patched = operations.apply(stored.content)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError) as exc:
        raise InvalidRequest(N_("error.patch_not_applicable")) from exc
    content = _checked(session, caller, code, validate(patched, expected_type=resource_type))
    row, changed = store.write(
        session,
        stored=stored,
        owner=code,
        owner_country=caller.country,
        content=content,
        method="PATCH",
    )
    return _written(row, changed=changed)


def delete(
    session: Session,
    caller: Caller,
    *,
    resource_type: str,
    res_id: str,
    if_match: int | None = None,
) -> Written:
    """DELETE: a new version marked deleted. An already deleted resource answers 204 again
    without a new version; one that never existed, or is not the caller's, 404."""
    code = _writer(caller, resource_type, Interaction.DELETE)
    stored = _own(session, caller, code, resource_type, res_id)
    check_version(stored, if_match)
    before = stored.content
    changed = store.delete_current(session, stored)
    return _written(stored, changed=changed, before=before)


def conditional_delete(
    session: Session, caller: Caller, *, resource_type: str, criteria: list[tuple[str, str]]
) -> Written:
    """DELETE [type]?criteria, one resource at a time: no match 404, two or more 412."""
    code = _writer(caller, resource_type, Interaction.DELETE)
    found = own_matches(session, code, resource_type, _scoped(caller, code, criteria))
    if not found:
        raise NotFound(N_("error.conditional_no_match"), resource_type=resource_type)
    stored = store.load(session, resource_type, found[0].res_id, lock=True)
    assert stored is not None
    before = stored.content
    store.delete_current(session, stored)
    return _written(stored, before=before)


def patient_references(
    resource: dict[str, Any] | None, resource_type: str, res_id: str
) -> list[str]:
    """Which patient a write concerns, for the audit trail: the Patient itself, or the one
    named in `subject` or `patient`."""
    if resource_type == "Patient":
        return [f"Patient/{res_id}"]
    found = []
    for key in ("subject", "patient"):
        value = (resource or {}).get(key)
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            found.append(reference)
    return found
