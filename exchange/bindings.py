"""Required `code` bindings, checked against the value sets the R4B models carry.

fhir.resources' models accept any string in a `code` element (`gender: "M"` passes), but
each such element's field metadata lists its codes (`enum_values`, generated from the
element definitions), and `exchange.elements` reads them once per model. Every write's
content is walked along its model, contained resources and extension values included, so
whatever the store serves (and later issues register) is covered without a table here.

The generator keeps only what fits an element's short description: a list ending in `+`
is cut short. For such elements of stored types the rest of the value set comes from the
R4 specification (`COMPLETIONS`); any other cut-short list is left unchecked rather than
refusing codes the specification allows.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from exchange import elements
from puente.errors import Issue
from translation.i18n import N_

CUT_SHORT = "+"
# A list ending in "etc." is an extensible binding's examples (Expression.language), not a
# value set to hold codes to.
OPEN = "etc."
# The codes a generated list leaves out after its `+` (R4 4.0.1 value sets).
COMPLETIONS: dict[tuple[str, ...], tuple[str, ...]] = {
    # http://hl7.org/fhir/R4/valueset-encounter-status.html
    ("planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled"): (
        "entered-in-error",
        "unknown",
    ),
    # http://hl7.org/fhir/R4/valueset-observation-status.html
    ("registered", "preliminary", "final", "amended"): (
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    ),
    # http://hl7.org/fhir/R4/valueset-diagnostic-report-status.html
    ("registered", "partial", "preliminary", "final"): (
        "amended",
        "corrected",
        "appended",
        "cancelled",
        "entered-in-error",
        "unknown",
    ),
}


@cache
def allowed(enum_values: tuple[str, ...]) -> frozenset[str] | None:
    """The codes a generated list stands for, or None if it is open or cut short and
    unknown."""
    if OPEN in enum_values:
        return None
    if not enum_values or enum_values[-1] != CUT_SHORT:
        return frozenset(enum_values)
    head = enum_values[:-1]
    rest = COMPLETIONS.get(head)
    return None if rest is None else frozenset(head + rest)


def _listed(enum_values: tuple[str, ...]) -> str:
    head = enum_values[:-1] if enum_values[-1:] == (CUT_SHORT,) else enum_values
    return ", ".join(head + COMPLETIONS.get(head, ()))


def violations(
    resource: dict[str, Any], walked: list[tuple[elements.Node, str, elements.Field]] | None = None
) -> list[Issue]:
    """One issue per `code` value outside its required value set, naming the element and
    the allowed codes (never the value sent). `walked` is the resource's walk, if taken."""
    issues = []
    for node, key, field in elements.walk(resource) if walked is None else walked:
        if field.enum_values is None:
            continue
        codes = allowed(field.enum_values)
        if codes is None:
            continue
        value = node.value[key]
        many = isinstance(value, list)
        for index, code in enumerate(value if many else [value]):
            if isinstance(code, str) and code not in codes:
                path = f"{node.expression}.{key}" + (f"[{index}]" if many else "")
                issues.append(
                    Issue(
                        N_("error.code_not_in_value_set"),
                        {"element": path, "allowed": _listed(field.enum_values)},
                        code="code-invalid",
                        expression=(path,),
                    )
                )
    return issues


def cut_short(resource_types: list[str]) -> dict[str, tuple[str, ...]]:
    """Elements under the given types whose generated code list ends in `+`, by model and
    element name, with the list's head (what `COMPLETIONS` is keyed by)."""
    found: dict[str, tuple[str, ...]] = {}
    for model in elements.models_under(resource_types):
        for key, field in elements.fields_of(model).items():
            if field.enum_values and field.enum_values[-1] == CUT_SHORT:
                found[f"{model.__name__}.{key}"] = field.enum_values[:-1]
    return found
