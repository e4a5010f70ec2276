"""Puente's rules for a Consent beyond the base FHIR rules (issue 6, point 1).

`validate_consent` returns one `Issue` per broken rule, each with the FHIRPath of the
element and a catalog key; the API renders them as a 422 OperationOutcome. Issue
parameters are element paths and codes, never patient data.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from consent.codes import (
    ACT_REASON,
    CATEGORIES,
    CONSENT_SCOPE,
    DENY_BASE,
    KNOWN_LABEL_CODES,
    PARTICIPATION_TYPE,
    PERMIT_BASE,
    PURPOSES,
    RECIPIENT_ROLES,
    RESOURCE_TYPES,
    SOURCE_ROLES,
)
from puente.errors import Issue
from puente.fhir.dates import date_range
from translation.i18n import N_

STATUSES = frozenset({"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"})
MAX_DEPTH = 8  # nested exceptions deeper than this are refused, not evaluated
DATA_MEANINGS = frozenset({"instance", "authoredby"})


def _stored_types() -> frozenset[str]:
    from exchange.resources import STORE_TYPES

    return frozenset(STORE_TYPES)


def _issue(key: str, expression: str, code: str = "business-rule", **params: Any) -> Issue:
    return Issue(key, {"element": expression, **params}, code=code, expression=(expression,))


def validate_consent(
    resource: Mapping[str, Any],
    *,
    organizations: Mapping[str, str | None],
    stored_types: Collection[str] | None = None,
) -> list[Issue]:
    """Every broken rule of `resource`, a Consent the R4B model accepted.

    `organizations` is the directory: `Organization/<id>` of each hospital to its
    country's Organization (`partOf`), and of each country to None.
    """
    types = frozenset(stored_types) if stored_types is not None else _stored_types()
    issues: list[Issue] = []
    issues += _scope_and_patient(resource)
    issues += _category_and_policy(resource)
    root = resource.get("provision")
    if isinstance(root, Mapping):
        issues += _provision(root, "Consent.provision", 0, organizations, types)
    return issues


def _scope_and_patient(resource: Mapping[str, Any]) -> Iterator[Issue]:
    scope = resource.get("scope") or {}
    if not any(
        c.get("system") == CONSENT_SCOPE and c.get("code") == "patient-privacy"
        for c in scope.get("coding") or ()
    ):
        yield _issue(N_("consent.scope_not_privacy"), "Consent.scope")
    if resource.get("status") not in STATUSES:
        yield _issue(N_("consent.status_unknown"), "Consent.status", code="value")
    reference = (resource.get("patient") or {}).get("reference")
    if not reference:
        yield _issue(N_("consent.patient_missing"), "Consent.patient", code="required")
    elif not _is_reference(reference, "Patient"):
        yield _issue(N_("consent.patient_reference"), "Consent.patient.reference")


def _category_and_policy(resource: Mapping[str, Any]) -> Iterator[Issue]:
    if not any(
        c.get("code") in CATEGORIES.get(c.get("system"), ())
        for category in resource.get("category") or ()
        for c in category.get("coding") or ()
    ):
        yield _issue(N_("consent.category_unknown"), "Consent.category", code="value")
    rule = resource.get("policyRule")
    if not resource.get("policy") and not rule:
        # ppc-1: "Either a Policy or PolicyRule".
        yield _issue(N_("consent.policy_missing"), "Consent.policyRule", code="required")
    # The base rule: the root provision's type, or the policyRule's OPTIN/OPTOUT; when
    # both say, they must agree (consent.parse reads the root's type first).
    rule_codes = {c.get("code") for c in (rule or {}).get("coding") or ()}
    bases = {"permit"} if rule_codes & PERMIT_BASE else set()
    bases |= {"deny"} if rule_codes & DENY_BASE else set()
    root_type = (resource.get("provision") or {}).get("type")
    if root_type is None and len(bases) != 1:
        yield _issue(N_("consent.base_unknown"), "Consent.provision.type", code="required")
    elif root_type is not None and bases and bases != {root_type}:
        yield _issue(N_("consent.base_conflict"), "Consent.provision.type")


def _provision(
    raw: Mapping[str, Any],
    path: str,
    depth: int,
    organizations: Mapping[str, str | None],
    types: frozenset[str],
) -> Iterator[Issue]:
    if depth > MAX_DEPTH:
        yield _issue(N_("consent.provision_too_deep"), path, code="too-costly", limit=MAX_DEPTH)
        return
    if depth > 0 and raw.get("type") not in ("permit", "deny"):
        yield _issue(N_("consent.provision_type_missing"), f"{path}.type", code="required")
    if raw.get("code"):
        yield _issue(N_("consent.code_unsupported"), f"{path}.code", code="not-supported")
    yield from _periods(raw, path)
    yield from _actors(raw, path, organizations)
    yield from _codings(raw, path, types)
    yield from _data(raw, path, organizations, types)
    for index, child in enumerate(raw.get("provision") or ()):
        yield from _provision(child, f"{path}.provision[{index}]", depth + 1, organizations, types)


def _periods(raw: Mapping[str, Any], path: str) -> Iterator[Issue]:
    for name in ("period", "dataPeriod"):
        period = raw.get(name)
        if not isinstance(period, Mapping):
            continue
        try:
            start = date_range(period["start"])[0] if period.get("start") else None
            end = date_range(period["end"])[1] if period.get("end") else None
        except ValueError:
            yield _issue(N_("consent.period_invalid"), f"{path}.{name}", code="value")
            continue
        if start is not None and end is not None and end <= start:
            yield _issue(N_("consent.period_reversed"), f"{path}.{name}", code="value")


def _actors(
    raw: Mapping[str, Any], path: str, organizations: Mapping[str, str | None]
) -> Iterator[Issue]:
    for index, actor in enumerate(raw.get("actor") or ()):
        where = f"{path}.actor[{index}]"
        codes = {
            c.get("code")
            for c in (actor.get("role") or {}).get("coding") or ()
            if c.get("system") == PARTICIPATION_TYPE
        }
        if not actor.get("role"):
            yield _issue(N_("consent.actor_role_missing"), f"{where}.role", code="required")
        elif not codes & (RECIPIENT_ROLES | SOURCE_ROLES):
            yield _issue(N_("consent.actor_role_unsupported"), f"{where}.role", code="value")
        reference = (actor.get("reference") or {}).get("reference")
        if not _is_reference(reference, "Organization"):
            yield _issue(N_("consent.actor_not_organization"), f"{where}.reference")
        elif reference not in organizations:
            yield _issue(N_("consent.actor_unknown_organization"), f"{where}.reference")


def _codings(raw: Mapping[str, Any], path: str, types: frozenset[str]) -> Iterator[Issue]:
    for index, coding in enumerate(raw.get("purpose") or ()):
        if coding.get("system") != ACT_REASON or coding.get("code") not in PURPOSES:
            yield _issue(
                N_("consent.purpose_unknown"), f"{path}.purpose[{index}]", code="code-invalid"
            )
    for index, coding in enumerate(raw.get("class") or ()):
        if coding.get("system") != RESOURCE_TYPES or coding.get("code") not in types:
            yield _issue(N_("consent.class_unknown"), f"{path}.class[{index}]", code="code-invalid")
    for index, coding in enumerate(raw.get("securityLabel") or ()):
        if coding.get("code") not in KNOWN_LABEL_CODES.get(coding.get("system"), ()):
            yield _issue(
                N_("consent.label_unknown"), f"{path}.securityLabel[{index}]", code="code-invalid"
            )


def _data(
    raw: Mapping[str, Any],
    path: str,
    organizations: Mapping[str, str | None],
    types: frozenset[str],
) -> Iterator[Issue]:
    for index, item in enumerate(raw.get("data") or ()):
        where = f"{path}.data[{index}]"
        meaning = item.get("meaning")
        reference = (item.get("reference") or {}).get("reference")
        if meaning not in DATA_MEANINGS:
            yield _issue(
                N_("consent.data_meaning_unsupported"), f"{where}.meaning", "not-supported"
            )
        elif meaning == "authoredby":
            if reference not in organizations:
                yield _issue(N_("consent.actor_unknown_organization"), f"{where}.reference")
        elif not any(_is_reference(reference, t) for t in types):
            yield _issue(N_("consent.data_reference_invalid"), f"{where}.reference")


def _is_reference(reference: Any, resource_type: str) -> bool:
    """A relative literal reference `Type/id` with a FHIR id (R4 2.24.0.1)."""
    if not isinstance(reference, str) or not reference.startswith(resource_type + "/"):
        return False
    rid = reference[len(resource_type) + 1 :]
    return 0 < len(rid) <= 64 and all(ch.isalnum() or ch in "-." for ch in rid) and rid.isascii()
