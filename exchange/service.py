"""Use cases of the store: read, vread, search, and the writes operators make.

What a caller may see is the disclosure gate's answer (`exchange.gate`): every path here
asks it, and a denied record is answered exactly as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from consent import facts as consent_facts
from consent import service as labelling
from consent.engine import Decision
from exchange import query, store
from exchange.gate import gate_for
from exchange.matching import links as mpi_links
from exchange.models import PUENTE_OWNER, ResourceVersion, StoredResource
from exchange.resources import STORE_TYPES
from puente.audit import service as audit
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction
from puente.context import current_context
from puente.errors import Gone, Issue, NotFound
from puente.fhir.bundle import subsetted
from puente.fhir.search import Include, SearchParam, SearchRequest, parse_search
from puente.settings import get_settings
from translation.i18n import N_, gettext

# On `meta` of a record another hospital disclosed: a notice its disclosure obliges (the
# 42 CFR 2.32 redisclosure notice and consent summary, the break-the-glass notice), in
# the caller's language.
NOTICE_EXTENSION = "https://puente.health/fhir/StructureDefinition/disclosure-notice"

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
    # Records a break-the-glass by this caller would open were left out (never which).
    withheld: bool = False


def visible_clause(session: Session, caller: Caller, resource_type: str) -> ColumnElement[bool]:
    """Exactly the current rows of `resource_type` the disclosure gate lets `caller` see,
    as a clause on `StoredResource` (for the MPI's own queries, `$everything`, export):
    one rule, every path."""
    return gate_for(session, caller).clause(resource_type)


def with_links(
    session: Session, caller: Caller, rows: list[StoredResource]
) -> list[dict[str, Any]]:
    """The rows' content, Patients with `Patient.link` (seealso) to the linked records the
    caller may see: added at read time, never stored in the hospital's resource."""
    patients = [r.pk for r in rows if r.res_type == "Patient" and r.content is not None]
    # Links always join records of two hospital systems: none to look up for a caller
    # who sees no other hospital's records.
    linked = (
        mpi_links.linked_ids(session, patients, visible=visible_clause(session, caller, "Patient"))
        if patients and gate_for(session, caller).sees_other_hospitals
        else {}
    )
    return [
        mpi_links.with_links(r.content, linked.get(r.pk, ())) for r in rows if r.content is not None
    ]


# The one entry searches and `$everything` add when records a break-the-glass by the
# caller would open were left out: it says that, never which (issue 6, point 4).
WITHHELD = Issue(
    N_("consent.withheld_btg"),
    code="suppressed",
    severity="information",
    coding=(("http://terminology.hl7.org/CodeSystem/v3-ActCode", "BTG"),),
)


def withheld_issues(withheld: bool) -> list[Issue]:
    return [WITHHELD] if withheld else []


def _locale() -> str:
    ctx = current_context()
    return ctx.locale if ctx is not None else get_settings().default_locale


def disclosed(
    session: Session,
    caller: Caller,
    shown: Sequence[tuple[int, int, dict[str, Any]]],
    *,
    subtype: str = "read",
    locale: str | None = None,
) -> list[dict[str, Any]]:
    """What leaves for `caller`, as (pk, version, content) shown: each record another
    hospital discloses gets the notices its decision obliges (42 CFR 2.32, break-the-
    glass) in `meta.extension`, and the request's disclosure audit row names it.

    Outside a request (CLI, tasks such as `$export`, the demo) the row is written here,
    with `subtype` saying how the records were asked for (read, vread, search-type,
    history, export...: the accounting of disclosures shows it), and the notices are in
    `locale` (the caller's); in a request, the request's row says it too."""
    gate = gate_for(session, caller)
    entities, patients, glass = gate.disclosures(shown)
    if entities:
        ctx = current_context()
        if ctx is not None:
            ctx.disclosed(entities, patients, break_the_glass=glass, subtype=subtype)
        else:
            audit.append(
                session,
                event_type="disclosure",
                subtype=subtype,
                action="R",
                caller=caller,
                entities=entities,
                patients=patients,
                outcome_detail="break-the-glass" if glass else None,
            )
    locale = locale or _locale()
    result = []
    for pk, version, content in shown:
        decision = gate.decision(pk, version)
        if decision is not None and decision.permit and decision.obligations:
            result.append(with_notices(content, decision, locale))
        else:
            result.append(content)
    return result


def with_notices(content: dict[str, Any], decision: Decision, locale: str) -> dict[str, Any]:
    """`content` with one `disclosure-notice` extension on `meta` per obligation."""
    notices = []
    for obligation in decision.obligations:
        params = obligation.summary.params() if obligation.summary is not None else {}
        notices.append(
            {
                "url": NOTICE_EXTENSION,
                "extension": [
                    {"url": "code", "valueCode": obligation.code},
                    {
                        "url": "text",
                        "valueString": gettext(locale, obligation.message_key, **params),
                    },
                ],
            }
        )
    meta = dict(content.get("meta") or {})
    meta["extension"] = [*(meta.get("extension") or ()), *notices]
    return {**content, "meta": meta}


def shown(
    session: Session,
    caller: Caller,
    rows: list[StoredResource],
    *,
    subtype: str = "read",
    locale: str | None = None,
) -> list[dict[str, Any]]:
    """The rows' current content as `caller` sees it: `Patient.link` added, the stored
    security labels merged into `meta.security`, the notices of a disclosure added (and
    audited: `subtype` and `locale` as `disclosed` takes them); deleted rows left out."""
    current = [r for r in rows if r.content is not None]
    contents = with_links(session, caller, current)
    labelled = labelling.labelled(
        session, [(r.pk, content) for r, content in zip(current, contents, strict=True)]
    )
    return disclosed(
        session,
        caller,
        [(r.pk, r.version, c) for r, c in zip(current, labelled, strict=True)],
        subtype=subtype,
        locale=locale,
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


def _permitted(session: Session, caller: Caller, stored: StoredResource) -> bool:
    """Whether the gate lets `caller` see `stored`; once deleted, whether it could see it
    before the deletion (ARCHITECTURE.md: `410 Gone` only to those)."""
    gate = gate_for(session, caller)
    if stored.content is not None:
        return gate.permits([stored])[0]
    last = session.get(ResourceVersion, (stored.pk, stored.version))
    return last is not None and gate.permits_versions([last])[0]


def load_visible(
    session: Session, caller: Caller, resource_type: str, res_id: str
) -> StoredResource:
    """The stored row of `resource_type/res_id` if the gate lets `caller` see it (deleted
    or not), else NotFound exactly as if it did not exist."""
    stored = _load(session, resource_type, res_id)
    if stored is None or not _permitted(session, caller, stored):
        raise NotFound(resource_type=resource_type, res_id=res_id[:64])
    return stored


def read(session: Session, caller: Caller, *, resource_type: str, res_id: str) -> Found:
    capability(resource_type)
    caller.require(resource_type, Interaction.READ)
    stored = load_visible(session, caller, resource_type, res_id)
    if stored.deleted or stored.content is None:
        raise Gone(resource_type=resource_type)
    return Found(shown(session, caller, [stored])[0], stored.version, stored.last_updated)


def vread(
    session: Session, caller: Caller, *, resource_type: str, res_id: str, version: int
) -> Found:
    capability(resource_type)
    caller.require(resource_type, Interaction.READ)
    stored = load_visible(session, caller, resource_type, res_id)
    row = session.get(ResourceVersion, (stored.pk, version))
    if row is None or not gate_for(session, caller).permits_versions([row])[0]:
        raise NotFound(N_("error.version_not_found"), version=version)
    if row.deleted or row.content is None:
        raise Gone(resource_type=resource_type)
    (content,) = labelling.versions_labelled(session, [(stored.pk, row.version, row.content)])
    (content,) = disclosed(session, caller, [(stored.pk, row.version, content)], subtype="vread")
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
    gate = gate_for(session, caller)

    def visible(t: str) -> ColumnElement[bool]:
        return gate.superset(t) if caller.may(t, Interaction.READ) else false()

    found = query.included(
        session, rows, request.include, targets_of=_include_targets, visible=visible
    ) + query.rev_included(session, resource_type, rows, request.revinclude, visible=visible)
    seen = {r.pk for r in rows}
    extras = []
    for stored in found:
        if stored.pk not in seen and stored.content is not None:
            seen.add(stored.pk)
            extras.append(stored)
    extras = [r for r, ok in zip(extras, gate.permits(extras), strict=True) if ok]
    return shown(session, caller, extras, subtype="search-type")


def search(
    session: Session, caller: Caller, *, resource_type: str, request: SearchRequest
) -> SearchResult:
    capability(resource_type)
    caller.require(resource_type, Interaction.SEARCH)
    gate = gate_for(session, caller)
    # The criteria alone (chained targets through the gate), then the gate exact inside
    # them: the engine is asked only about the rows the search could return.
    criteria = query.filtered(
        resource_type, request, lambda t: true() if t == resource_type else gate.clause(t)
    )
    within = StoredResource.pk.in_(criteria.with_only_columns(StoredResource.pk))
    main = gate.clause(resource_type, within=within)
    base = query.filtered(
        resource_type, request, lambda t: main if t == resource_type else gate.clause(t)
    )
    withheld = gate.withheld(resource_type, within, visible=main)
    wants_total = request.summary_count or request.total != "none"
    if request.count == 0 or request.summary_count:
        total = query.count(session, base) if wants_total else None
        return SearchResult([], total, withheld=withheld)
    found = query.page(session, base, resource_type=resource_type, request=request)
    total = None
    if wants_total:
        # A first page with no next page holds every match: no second query to count them.
        whole = request.page_token is None and request.offset == 0 and found.next_token is None
        total = len(found.rows) if whole else query.count(session, base)
    extras = _extras(session, caller, resource_type, request, found.rows)
    resources = shown(session, caller, found.rows, subtype="search-type")
    if request.elements:
        # R4 3.1.1.5.9: "The list of elements does not apply to included resources": the
        # included ones stay whole, so a client can still tell who a match's subject is.
        resources = [subsetted(r, request.elements) for r in resources]
    return SearchResult(
        resources, total, extras, found.next_token, found.previous_token, withheld=withheld
    )


def _name_of(content: dict[str, Any]) -> str | None:
    """An Organization's `name`, a person's first `HumanName` as people write it."""
    name = content.get("name")
    if isinstance(name, str):
        return name.strip() or None
    for human in name if isinstance(name, list) else ():
        if not isinstance(human, dict):
            continue
        if isinstance(human.get("text"), str) and human["text"].strip():
            return str(human["text"]).strip()
        parts = [*(human.get("prefix") or ()), *(human.get("given") or ()), human.get("family")]
        written = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        if written:
            return written
    return None


def display_names(session: Session, references: Sequence[str]) -> dict[str, str]:
    """`Practitioner/<id>` or `Organization/<id>` -> the name the record gives, for the
    references that name a stored, undeleted one (the accounting of disclosures says who
    saw a patient's records). Never a patient's name: other types are ignored."""
    keys = {
        tuple(r.split("/", 1))
        for r in references
        if r.count("/") == 1 and r.split("/", 1)[0] in ("Practitioner", "Organization")
    }
    rows = store.load_many(session, sorted(keys))  # type: ignore[arg-type]
    names = {}
    for (res_type, res_id), row in rows.items():
        name = _name_of(row.content) if row.content is not None else None
        if name:
            names[f"{res_type}/{res_id}"] = name
    return names


def patients_of(session: Session, references: Sequence[str]) -> dict[str, str]:
    """`Type/<id>` -> the id of the Patient that stored record is about (its own id for a
    Patient), from its current content or, once deleted, its last content; references to
    nothing, or to a record about no patient, are left out."""
    keys = {tuple(r.split("/", 1)) for r in references if r.count("/") == 1}
    rows = store.load_many(session, sorted(keys))  # type: ignore[arg-type]
    deleted = [row.pk for row in rows.values() if row.content is None]
    last: dict[int, dict[str, Any]] = {}
    if deleted:
        versions = session.execute(
            select(ResourceVersion.resource_pk, ResourceVersion.content)
            .where(ResourceVersion.resource_pk.in_(deleted))
            .order_by(ResourceVersion.resource_pk, ResourceVersion.version)
        ).all()
        last = {pk: content for pk, content in versions if content is not None}
    found = {}
    for (res_type, res_id), row in rows.items():
        content = row.content if row.content is not None else last.get(row.pk)
        about = consent_facts.patient_of(content) if content is not None else None
        if about:
            found[f"{res_type}/{res_id}"] = about
    return found


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
