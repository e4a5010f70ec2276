"""`Patient/$match` (FHIR R4 12.2.1 "Patient Matching") and IHE PIXm `$ihe-pix`.

Both see only what the caller may see: candidates and linked records pass the store's one
visibility rule (`exchange.service.visible_clause`), which the consent issue widens.
Candidates come from the blocking key index, never from a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from exchange import service as store_service
from exchange.matching import blocking, links, versions
from exchange.matching import features as feature_module
from exchange.matching.errors import (
    BadParameter,
    MatchRoleForbidden,
    SourceDomainUnknown,
    TargetSystemUnknown,
)
from exchange.matching.models import BlockKey, MatchRecord
from exchange.matching.score import Score, score
from exchange.models import StoredResource, TokenIndex
from exchange.validation import validate
from puente.auth import service as auth_service
from puente.auth.caller import Caller
from puente.auth.scopes import Interaction, Role
from puente.errors import NotFound
from translation.i18n import N_

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
DEFAULT_COUNT = 10
MAX_COUNT = 100
CANDIDATE_LIMIT = 200  # records scored per request, those sharing the most keys first
RANKED_LIMIT = 2000  # records ranked by shared keys before the visibility rule narrows them
# ARCHITECTURE.md "Roles": systems among their own patients, clinicians; data stewards too.
MATCHERS = frozenset({Role.SYSTEM, Role.CLINICIAN, Role.CONSENT_OFFICER})


@dataclass(frozen=True)
class MatchRequest:
    resource: dict[str, Any]
    only_certain: bool = False
    count: int = DEFAULT_COUNT


@dataclass(frozen=True)
class Candidate:
    resource: dict[str, Any]
    score: Score


def authorize(caller: Caller) -> None:
    caller.require("Patient", Interaction.SEARCH)
    if caller.role not in MATCHERS:
        raise MatchRoleForbidden()


def _parameters(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadParameter(name="Parameters")
    validate(body, "Parameters")
    parameters = body.get("parameter") or []
    return [p for p in parameters if isinstance(p, dict)]


def parse_match(body: Any) -> MatchRequest:
    """The operation's input Parameters, each checked; a bad one is a 400 naming it."""
    resource: dict[str, Any] | None = None
    only_certain, count = False, DEFAULT_COUNT
    for parameter in _parameters(body):
        name = parameter.get("name")
        if name == "resource":
            value = parameter.get("resource")
            if resource is not None or not isinstance(value, dict):
                raise BadParameter(name="resource")
            if value.get("resourceType") != "Patient":
                raise BadParameter(name="resource")
            resource = validate(value, "Patient")
        elif name == "onlyCertainMatches":
            flag = parameter.get("valueBoolean")
            if not isinstance(flag, bool):
                raise BadParameter(name="onlyCertainMatches")
            only_certain = flag
        elif name == "count":
            number = parameter.get("valueInteger")
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise BadParameter(name="count")
            count = min(number, MAX_COUNT)
        else:
            raise BadParameter(name=str(name)[:64])
    if resource is None:
        raise BadParameter(name="resource")
    return MatchRequest(resource, only_certain, count)


def _candidates(session: Session, keys: list[str], visible: ColumnElement[bool]) -> list[int]:
    """The records sharing the most keys with the query, then those the caller may see.

    Two steps: the key index alone ranks (an index-only scan), and the visibility rule is
    applied to the few ranked rows. Joined in one query, PostgreSQL hashed every one of
    the caller's resources to find a handful (measured: 3 ms at 10,000, growing with the
    store)."""
    shared = func.count()
    ranked = session.execute(
        select(BlockKey.resource_pk, shared)
        .where(BlockKey.key.in_(keys))
        .group_by(BlockKey.resource_pk)
        .order_by(shared.desc(), BlockKey.resource_pk)
        .limit(RANKED_LIMIT)
    ).all()
    if not ranked:
        return []
    allowed = set(
        session.scalars(
            select(StoredResource.pk).where(
                StoredResource.pk.in_([pk for pk, _ in ranked]),
                StoredResource.deleted.is_(False),
                visible,
            )
        )
    )
    return [pk for pk, _ in ranked if pk in allowed][:CANDIDATE_LIMIT]


def match(session: Session, caller: Caller, *, request: MatchRequest) -> list[Candidate]:
    """The caller's visible Patients that may be the person described, best first."""
    authorize(caller)
    wanted = feature_module.features({**request.resource, "id": request.resource.get("id", "")})
    keys = sorted(blocking.blocking_keys(wanted))
    if not keys:
        return []
    pks = _candidates(session, keys, store_service.visible_clause(session, caller, "Patient"))
    if not pks:
        return []
    model = versions.active(session)
    scored = [
        (pk, score(wanted, feature_module.from_json(features), model))
        for pk, features in session.execute(
            select(MatchRecord.resource_pk, MatchRecord.features).where(
                MatchRecord.resource_pk.in_(pks)
            )
        )
    ]
    scored = [(pk, found) for pk, found in scored if found.grade != "certainly-not"]
    scored.sort(key=lambda item: (-item[1].probability, item[0]))
    if request.only_certain:
        certain = [item for item in scored if item[1].grade == "certain"]
        scored = certain if len(certain) == 1 else []
    scored = scored[: request.count]
    rows = {
        row.pk: row
        for row in session.scalars(
            select(StoredResource).where(StoredResource.pk.in_([pk for pk, _ in scored]))
        )
    }
    ordered = [rows[pk] for pk, _ in scored]
    # Another hospital's Patients leave here: labels, notices and the disclosure row.
    contents = store_service.shown(session, caller, ordered, subtype="match")
    return [Candidate(content, found) for content, (_, found) in zip(contents, scored, strict=True)]


def _identifier(text: str | None, name: str) -> tuple[str, str]:
    system, bar, value = (text or "").partition("|")
    if not bar or not system or not value:
        raise BadParameter(name=name)
    return system, value


@dataclass(frozen=True)
class CrossReference:
    res_id: str
    identifiers: list[dict[str, Any]]


def pix(
    session: Session, caller: Caller, *, source_identifier: str | None, target_systems: list[str]
) -> list[CrossReference]:
    """The records linked to the one `source_identifier` (`system|value`) names, with their
    identifiers (only those in `target_systems` when given).

    IHE ITI-83 2:3.83.4.1.3: a domain is recognized when its identifier system is registered
    to some hospital system (`puente system add --identifier-system`), whatever the records:
    an unknown source domain is 400, an unknown targetSystem 403, and a recognized
    identifier that no Patient the caller may see carries 404."""
    authorize(caller)
    system, value = _identifier(source_identifier, "sourceIdentifier")
    recognized = auth_service.recognized_identifier_systems(session, [system, *target_systems])
    if system not in recognized:
        raise SourceDomainUnknown(system=system[:200])
    unknown = sorted(set(target_systems) - recognized)
    if unknown:
        raise TargetSystemUnknown(system=unknown[0][:200])
    visible = store_service.visible_clause(session, caller, "Patient")
    source = session.scalars(
        select(StoredResource.pk)
        .join(TokenIndex, TokenIndex.resource_pk == StoredResource.pk)
        .where(
            TokenIndex.res_type == "Patient",
            TokenIndex.param == "identifier",
            TokenIndex.system == system,
            TokenIndex.code == value,
            StoredResource.deleted.is_(False),
            visible,
        )
        .order_by(StoredResource.pk)
    ).first()
    if source is None:  # PIXm ITI-83 case 3: the identifier is not known (here: visible)
        raise NotFound(N_("error.mpi_source_identifier_not_found"))
    found = []
    returned = []
    for row in links.linked_resources(session, source, visible=visible):
        identifiers = [
            i
            for i in (row.content or {}).get("identifier") or []
            if isinstance(i, dict) and (not target_systems or i.get("system") in target_systems)
        ]
        if target_systems and not identifiers:
            continue
        found.append(CrossReference(row.res_id, identifiers))
        returned.append(row)
    # The identifiers of another hospital's records are a disclosure: on record.
    store_service.disclosed(
        session,
        caller,
        [(r.pk, r.version, dict(r.content or {})) for r in returned],
        subtype="ihe-pix",
    )
    return found
