"""Validating resources with fhir.resources' R4B models (R4 JSON on the wire)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from exchange import bindings, elements, rules
from puente.db import utcnow
from puente.errors import BusinessRuleViolation, InvalidResource, Issue
from translation.i18n import N_

MAX_ISSUES = 20


def _expression(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("__root__",):
            path += f".{part}"
    return path


def validate(resource: Any, expected_type: str | None = None) -> dict[str, Any]:
    """The resource itself once the R4B model accepts it, its codes keep their required
    bindings and it keeps the base invariants (else 400), and it obeys Puente's business
    rules (else 422); each issue names its element.

    The offending values are never echoed back: they may be names or identifiers.
    """
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InvalidResource(N_("error.resource_type_missing"))
    resource_type = resource["resourceType"]
    if expected_type and resource_type != expected_type:
        raise InvalidResource(
            N_("error.resource_type_mismatch"), expected=expected_type, found=resource_type[:64]
        )
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError) as exc:
        raise InvalidResource(N_("error.resource_type_unknown"), found=resource_type[:64]) from exc
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for error in exc.errors()[:MAX_ISSUES]:
            expression = _expression(resource_type, tuple(error.get("loc", ())))
            issues.append(
                Issue(
                    N_("error.element_invalid"),
                    {"element": expression},
                    code="structure" if error.get("type") == "extra_forbidden" else "value",
                    expression=(expression,),
                )
            )
        raise InvalidResource(issues=issues) from exc
    walked = elements.walk(resource)
    invalid = bindings.violations(resource, walked) + rules.invariant_issues(resource, walked)
    if invalid:
        raise InvalidResource(issues=invalid[:MAX_ISSUES])
    broken = rules.business_issues(resource, now=utcnow())
    if broken:
        raise BusinessRuleViolation(issues=broken[:MAX_ISSUES])
    # Store what the sender wrote, not the model's re-serialisation: a round trip through
    # Python floats would change decimals such as `1.50` (R4 2.1.28.1 keeps precision).
    return resource
