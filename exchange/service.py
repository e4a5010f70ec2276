"""Use cases of the store: read, vread, search, and the writes operators make.

Visibility here is the platform's: directory data (Organization) is readable by every
authenticated role holding a scope on it; anything else only by its own hospital system.
The consent issue replaces `_visible` with the disclosure gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.orm import Session

from consent import service as labelling
from exchange import query, store
from exchange.matching import links as mpi_links
from exchange.models import PUENTE_OWNER, ReferenceIndex, ResourceVersion, StoredResource
from exchange.resources import DIRECTORY_TYPES, STORE_TYPES
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction, Role
from puente.errors import Gone, NotFound
from puente.fhir.bundle import subsetted
from puente.fhir.search import Include, SearchParam, SearchRequest, parse_search
from translation.i18n import N_

COUNTRY_NAMES = {"MX": "México", "US": "United States"}


@dataclass(frozen=True)
class Found:
    resource: dict[str, Any]
    version: int
    last_updated: Any


@dataclass(frozen=True)
class SearchResult:
    resources: list[dict[str, Any]]
    total: int | None
    included: list[dict[str, Any]] = field(default_factory=list)
    next_token: str | None = None
    previous_token: str | None = None


# The references that put a resource in a patient's compartment (FHIR R4
# compartmentdefinition-patient: the parameters its types list, whatever the type).
COMPARTMENT_PARAMS = (
    "patient",
    "subject",
    "performer",
    "actor",
    "author",
    "asserter",
    "recorder",
    "requester",
    "beneficiary",
)


def _own_patient(caller: Caller) -> str | None:
    user = caller.fhir_user or ""
    return user.removeprefix("Patient/") if user.startswith("Patient/") else None


def rows_visible(
    caller: Caller,
    *,
    pk: Any,
    res_type: Any,
    res_id: Any,
    owner: Any,
) -> ColumnElement[bool]:
    """Which stored rows (current or past versions: the columns given) `caller` may see:
    directory data to all; a hospital's people and system their own system's records; a
    patient only its own compartment: its Patient record and what references it (SMART
    `patient/` scopes), its own Consents (owned by `puente`) included. The consent issue's
    gate widens this one rule."""
    directory: ColumnElement[bool] = res_type.in_(DIRECTORY_TYPES)
    own_system: ColumnElement[bool] = owner == (caller.org_code or "")
    if caller.role is not Role.PATIENT:
        return or_(directory, own_system)
    patient = _own_patient(caller)
    if patient is None:
        return directory
    references_patient = exists().where(
        ReferenceIndex.resource_pk == pk,
        ReferenceIndex.target_type == "Patient",
        ReferenceIndex.target_id == patient,
        ReferenceIndex.param.in_(COMPARTMENT_PARAMS),
    )
    return or_(
        directory,
        and_(own_system, res_type == "Patient", res_id == patient),
        and_(or_(own_system, owner == PUENTE_OWNER), references_patient),
    )


def _visible_clause(caller: Caller, resource_type: str) -> ColumnElement[bool]:
    if resource_type in DIRECTORY_TYPES:
        return true()
    return rows_visible(
        caller,
        pk=StoredResource.pk,
        res_type=StoredResource.res_type,
        res_id=StoredResource.res_id,
        owner=StoredResource.owner,
    )


def _visible(session: Session, caller: Caller, stored: StoredResource) -> bool:
    if stored.res_type in DIRECTORY_TYPES:
        return True
    if caller.role is not Role.PATIENT:
        return stored.owner == caller.org_code
    found = session.scalar(
        select(StoredResource.pk).where(
            StoredResource.pk == stored.pk, _visible_clause(caller, stored.res_type)
        )
    )
    return found is not None


def visible_clause(caller: Caller, resource_type: str) -> ColumnElement[bool]:
    """The visibility rule as a clause on `StoredResource`, for the MPI's own queries
    (`$match`, `$ihe-pix`): one rule, whatever widens it widens them."""
    return _visible_clause(caller, resource_type)


def with_links(
    session: Session, caller: Caller, rows: list[StoredResource]
) -> list[dict[str, Any]]:
    """The rows' content, Patients with `Patient.link` (seealso) to the linked records the
    caller may see: added at read time, never stored in the hospital's resource."""
    patients = [r.pk for r in rows if r.res_type == "Patient" and r.content is not None]
    linked = (
        mpi_links.linked_ids(session, patients, visible=_visible_clause(caller, "Patient"))
        if patients
        else {}
    )
    return [
        mpi_links.with_links(r.content, linked.get(r.pk, ())) for r in rows if r.content is not None
    ]


def shown(session: Session, caller: Caller, rows: list[StoredResource]) -> list[dict[str, Any]]:
    """The rows' current content as `caller` sees it: `Patient.link` added and the stored
    security labels merged into `meta.security`; deleted rows left out."""
    current = [r for r in rows if r.content is not None]
    contents = with_links(session, caller, current)
    return labelling.labelled(
        session, [(r.pk, content) for r, content in zip(current, contents, strict=True)]
    )


def capability(resource_type: str) -> Any:
    found = STORE_TYPES.get(resource_type)
    if found is None:
        raise NotFound(N_("error.resource_type_unsupported"), resource_type=resource_type[:64])
    return found


def _load(session: Session, resource_type: str, res_id: str) -> StoredResource | None:
    return session.scalars(
        select(StoredResource).where(
            StoredResource.res_type == resource_type, StoredResource.res_id == res_id
        )
    ).one_or_none()


def read(session: Session, caller: Caller, *, resource_type: str, res_id: str) -> Found:
    capability(resource_type)
    caller.require(resource_type, Interaction.READ)
    stored = _load(session, resource_type, res_id)
    if stored is None or not _visible(session, caller, stored):
        raise NotFound(resource_type=resource_type, res_id=res_id[:64])
    if stored.deleted or stored.content is None:
        raise Gone(resource_type=resource_type)
    return Found(shown(session, caller, [stored])[0], stored.version, stored.last_updated)


def vread(
    session: Session, caller: Caller, *, resource_type: str, res_id: str, version: int
) -> Found:
    capability(resource_type)
    caller.require(resource_type, Interaction.READ)
    stored = _load(session, resource_type, res_id)
    if stored is None or not _visible(session, caller, stored):
        raise NotFound(resource_type=resource_type, res_id=res_id[:64])
    row = session.get(ResourceVersion, (stored.pk, version))
    if row is None:
        raise NotFound(N_("error.version_not_found"), version=version)
    if row.deleted or row.content is None:
        raise Gone(resource_type=resource_type)
    (content,) = labelling.versions_labelled(session, [(stored.pk, row.version, row.content)])
    return Found(content, row.version, row.last_updated)


def _search_params(resource_type: str) -> tuple[SearchParam, ...] | None:
    found = STORE_TYPES.get(resource_type)
    return found.search_params if found else None


def parse(resource_type: str, items: list[tuple[str, str]], *, lenient: bool) -> SearchRequest:
    return parse_search(
        items,
        capability(resource_type).search_params,
        lenient=lenient,
        resource_type=resource_type,
        resolve=_search_params,
    )


def _include_targets(include: Include) -> list[str]:
    if include.target_type:
        return [include.target_type] if include.target_type in STORE_TYPES else []
    params = (
        [include.param]
        if include.param
        else [p for p in STORE_TYPES[include.source_type].search_params if p.targets]
    )
    targets = {t for p in params for t in (p.targets or STORE_TYPES)}
    return sorted(t for t in targets if t in STORE_TYPES)


def _extras(
    session: Session, caller: Caller, resource_type: str, request: SearchRequest, rows: list[Any]
) -> list[dict[str, Any]]:
    """`_include`/`_revinclude`: visible, readable by the caller, each once, never a match."""

    def visible(t: str) -> ColumnElement[bool]:
        return _visible_clause(caller, t) if caller.may(t, Interaction.READ) else false()

    found = query.included(
        session, rows, request.include, targets_of=_include_targets, visible=visible
    ) + query.rev_included(session, resource_type, rows, request.revinclude, visible=visible)
    seen = {r.pk for r in rows}
    extras = []
    for stored in found:
        if stored.pk not in seen and stored.content is not None:
            seen.add(stored.pk)
            extras.append(stored)
    return shown(session, caller, extras)


def search(
    session: Session, caller: Caller, *, resource_type: str, request: SearchRequest
) -> SearchResult:
    capability(resource_type)
    caller.require(resource_type, Interaction.SEARCH)

    def visible(t: str) -> ColumnElement[bool]:
        return _visible_clause(caller, t)

    base = query.filtered(resource_type, request, visible)
    wants_total = request.summary_count or request.total != "none"
    total = query.count(session, base) if wants_total else None
    if request.count == 0 or request.summary_count:
        return SearchResult([], total)
    found = query.page(session, base, resource_type=resource_type, request=request)
    extras = _extras(session, caller, resource_type, request, found.rows)
    resources = shown(session, caller, found.rows)
    if request.elements:
        # R4 3.1.1.5.9: "The list of elements does not apply to included resources": the
        # included ones stay whole, so a client can still tell who a match's subject is.
        resources = [subsetted(r, request.elements) for r in resources]
    return SearchResult(resources, total, extras, found.next_token, found.previous_token)


def ensure_country_organization(session: Session, *, country: str) -> str:
    """The Organization of a country (`Organization/mx`), owned by Puente; its id."""
    org_id = country.lower()
    store.put(
        session,
        owner=PUENTE_OWNER,
        owner_country=None,
        resource={
            "resourceType": "Organization",
            "id": org_id,
            "active": True,
            "identifier": [{"system": "urn:iso:std:iso:3166", "value": country}],
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "govt",
                            "display": "Government",
                        }
                    ]
                }
            ],
            "name": COUNTRY_NAMES.get(country, country),
            "address": [{"country": country}],
        },
    )
    return org_id


def register_hospital_organization(session: Session, *, code: str, name: str, country: str) -> str:
    """A hospital system's Organization, `partOf` its country's; owned by the system."""
    country_id = ensure_country_organization(session, country=country)
    store.put(
        session,
        owner=code,
        owner_country=country,
        resource={
            "resourceType": "Organization",
            "id": code,
            "active": True,
            "identifier": [{"system": "urn:puente:system", "value": code}],
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ]
                }
            ],
            "name": name,
            "address": [{"country": country}],
            "partOf": {"reference": f"Organization/{country_id}"},
        },
    )
    return code
