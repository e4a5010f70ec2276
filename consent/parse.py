"""FHIR R4 Consent JSON to `ConsentRules`, compiled once per Consent version.

`parse_consent` is for Consents arriving over the API: the R4B model first (400), then
Puente's rules (`consent.validation`, 422), then `compile_rules`. The gate compiles stored
Consents, which passed both on the way in, with `compile_rules` alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from consent.codes import (
    ACT_REASON,
    DENY_BASE,
    PARTICIPATION_TYPE,
    PERMIT_BASE,
    RECIPIENT_ROLES,
    RESOURCE_TYPES,
    SOURCE_ROLES,
    Label,
)
from consent.engine import ConsentRules, ConsentSummary, Provision, provision_decision
from consent.errors import InvalidConsent
from consent.validation import validate_consent
from exchange.validation import validate
from puente.fhir.dates import date_range

AUTHORED_BY = "authoredby"
INSTANCE = "instance"


def parse_consent(
    resource: Mapping[str, Any],
    *,
    organizations: Mapping[str, str | None],
    stored_types: Collection[str] | None = None,
) -> ConsentRules:
    """Validate a Consent (R4B model, then Puente's rules) and compile it.

    Raises InvalidResource (400) or InvalidConsent (422) with one issue per problem.
    """
    validate(dict(resource), "Consent")
    issues = validate_consent(resource, organizations=organizations, stored_types=stored_types)
    if issues:
        raise InvalidConsent(issues=issues)
    return compile_rules(resource)


def base_permit(resource: Mapping[str, Any]) -> bool | None:
    """The Consent's base rule: the root provision's type, else its policyRule's code
    (OPTIN permits, OPTOUT denies); None when neither says."""
    root = resource.get("provision") or {}
    if root.get("type") in ("permit", "deny"):
        return bool(root["type"] == "permit")
    for code in _codes((resource.get("policyRule") or {}).get("coding")):
        if code in PERMIT_BASE:
            return True
        if code in DENY_BASE:
            return False
    return None


def compile_rules(resource: Mapping[str, Any]) -> ConsentRules:
    """The rules of an already validated Consent; a Consent without a base denies."""
    root_json: Mapping[str, Any] = resource.get("provision") or {}
    consent = f"Consent/{resource.get('id', '')}"
    root = _provision(
        root_json,
        consent=consent,
        path="Consent.provision",
        depth=0,
        permit=bool(base_permit(resource)),
        inherited_labels=frozenset(),
        inherited_recipients=frozenset(),
        # Consent.organization: the hospital that took the consent names itself as a
        # discloser (42 CFR 2.31(a)(2)).
        inherited_sources=frozenset(
            ref
            for org in resource.get("organization") or ()
            if isinstance(ref := (org or {}).get("reference"), str)
        ),
    )
    reference = str((resource.get("patient") or {}).get("reference") or "")
    return ConsentRules(
        consent=consent,
        patient=reference.removeprefix("Patient/") if reference.startswith("Patient/") else "",
        active=resource.get("status") == "active",
        root=root,
        summary=_summary(resource, root),
    )


def _provision(
    raw: Mapping[str, Any],
    *,
    consent: str,
    path: str,
    depth: int,
    permit: bool,
    inherited_labels: frozenset[Label],
    inherited_recipients: frozenset[str],
    inherited_sources: frozenset[str],
) -> Provision:
    start, end = _period(raw.get("period"))
    data_start, data_end = _period(raw.get("dataPeriod"))
    recipients = _actors(raw.get("actor"), RECIPIENT_ROLES)
    labels = _labels(raw.get("securityLabel"))
    instances, authors = _data(raw.get("data"))
    named_labels = inherited_labels | (labels or frozenset())
    named = inherited_recipients | (recipients or frozenset())
    sources = _actors(raw.get("actor"), SOURCE_ROLES)
    named_sources = inherited_sources | (sources or frozenset()) | (authors or frozenset())
    children = tuple(
        _provision(
            child,
            consent=consent,
            path=f"{path}.provision[{index}]",
            depth=depth + 1,
            permit=child.get("type") == "permit",
            inherited_labels=named_labels,
            inherited_recipients=named,
            inherited_sources=named_sources,
        )
        for index, child in enumerate(raw.get("provision") or ())
    )
    return Provision(
        path=path,
        depth=depth,
        permit=permit,
        decision=provision_decision(permit, consent, path),
        start=start,
        end=end,
        recipients=recipients,
        sources=sources,
        purposes=_present(
            frozenset(c["code"] for c in raw.get("purpose") or () if _is(c, ACT_REASON)),
            raw.get("purpose"),
        ),
        classes=_present(
            frozenset(c["code"] for c in raw.get("class") or () if _is(c, RESOURCE_TYPES)),
            raw.get("class"),
        ),
        labels=labels,
        instances=instances,
        authors=authors,
        data_start=data_start,
        data_end=data_end,
        children=children,
        named_labels=named_labels,
        named_recipients=named,
        named_sources=named_sources,
    )


def _is(coding: Mapping[str, Any], system: str) -> bool:
    return coding.get("system") == system and isinstance(coding.get("code"), str)


def _codes(codings: Any) -> Iterator[str]:
    for coding in codings or ():
        if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
            yield coding["code"]


def _present(values: frozenset[Any], element: Any) -> frozenset[Any] | None:
    """None when the element is absent (no condition); the set, possibly empty, when it is
    there: a condition on codes Puente does not know matches nothing."""
    return values if element else None


def _period(raw: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A Period as a half-open UTC range; `end` covers its whole precision (`2025` is the
    whole year)."""
    if not isinstance(raw, Mapping):
        return None, None
    start = date_range(raw["start"])[0] if raw.get("start") else None
    end = date_range(raw["end"])[1] if raw.get("end") else None
    return start, end


def _actors(raw: Any, roles: frozenset[str]) -> frozenset[str] | None:
    found = set()
    for actor in raw or ():
        codes = {
            c["code"]
            for c in (actor.get("role") or {}).get("coding") or ()
            if _is(c, PARTICIPATION_TYPE)
        }
        if codes & roles:
            reference = (actor.get("reference") or {}).get("reference")
            if isinstance(reference, str):
                found.add(reference)
    return frozenset(found) if found else None


def _labels(raw: Any) -> frozenset[Label] | None:
    if not raw:
        return None
    return frozenset(
        Label(c["system"], c["code"])
        for c in raw
        if isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
    )


def _data(raw: Any) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    instances: set[str] = set()
    authors: set[str] = set()
    for item in raw or ():
        reference = (item.get("reference") or {}).get("reference")
        if not isinstance(reference, str):
            continue
        if item.get("meaning") == INSTANCE:
            instances.add(reference)
        elif item.get("meaning") == AUTHORED_BY:
            authors.add(reference)
    if raw and not instances and not authors:
        # Data elements Puente cannot evaluate: the provision matches no record.
        return frozenset(), None
    return (frozenset(instances) or None), (frozenset(authors) or None)


def _walk(p: Provision) -> Iterator[Provision]:
    yield p
    for child in p.children:
        yield from _walk(child)


def _summary(resource: Mapping[str, Any], root: Provision) -> ConsentSummary:
    recipients: set[str] = set()
    purposes: set[str] = set()
    for p in _walk(root):
        if p.permit:
            recipients |= p.recipients or frozenset()
            purposes |= p.purposes or frozenset()
    period = (resource.get("provision") or {}).get("period") or {}
    return ConsentSummary(
        consent=f"Consent/{resource.get('id', '')}",
        date=resource.get("dateTime"),
        recipients=tuple(sorted(recipients)),
        purposes=tuple(sorted(purposes)),
        end=period.get("end"),
    )
