"""What a write must obey beyond the R4B models: base invariants the models leave out
(400) and Puente's business rules (422).

ARCHITECTURE.md: 400 for content that is not valid FHIR or fails the base rules, 422 for
valid FHIR that breaks a business rule. Period's `per-1` ("if present, start SHALL have a
lower value than end") is a constraint of the base specification's Period datatype, so a
Period ending before it starts is not valid FHIR at all: 400 with issue code `invariant`.
A birth date in the future is valid FHIR that no hospital record can truthfully hold:
422 `business-rule`.

Pure functions of the content and the clock. A business rule is a function registered for
its resource type with `@rule("Type")` that yields its issues; adding one is adding a
function here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from exchange import elements
from puente.errors import Issue
from puente.fhir.dates import date_range
from translation.i18n import N_

# Clocks of the sending systems may run ahead of ours by a little.
CLOCK_SKEW = dt.timedelta(minutes=5)
# A date without a time is a whole local day; UTC+14 is the first zone to reach it.
EARLIEST_ZONE = dt.timedelta(hours=14)

PERIOD = elements.model_named("Period")
Rule = Callable[[dict[str, Any], dt.datetime], Iterator[Issue]]
RULES: dict[str, list[Rule]] = {}


def rule(resource_type: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES.setdefault(resource_type, []).append(function)
        return function

    return register


def _range(value: Any) -> tuple[dt.datetime, dt.datetime] | None:
    if not isinstance(value, str):
        return None
    try:
        return date_range(value)
    except ValueError:
        return None


def in_future(value: Any, now: dt.datetime) -> bool:
    """Whether a FHIR date, dateTime or instant begins after `now`, wherever it was
    written and with the sender's clock a little ahead."""
    found = _range(value)
    if found is None:
        return False
    start = found[0] if "T" in value else found[0] - EARLIEST_ZONE
    return start > now + CLOCK_SKEW


def before(earlier: Any, later: Any) -> bool:
    """Whether `earlier` certainly ends before `later` begins (partial dates are ranges: a
    period from 2024-03-05 to 2024-03 is not known to be wrong, as in FHIRPath)."""
    first, second = _range(earlier), _range(later)
    return first is not None and second is not None and first[1] <= second[0]


def _future(expression: str) -> Issue:
    return Issue(
        N_("error.rule_in_future"),
        {"element": expression},
        code="business-rule",
        expression=(expression,),
    )


# --- base invariants (400) ------------------------------------------------------------


def invariant_issues(
    resource: dict[str, Any], walked: list[tuple[elements.Node, str, elements.Field]] | None = None
) -> list[Issue]:
    """`per-1` on every Period of the resource, wherever it sits. `walked` is the
    resource's walk, if taken."""
    issues = []
    for node, key, field in elements.walk(resource) if walked is None else walked:
        if field.model is not PERIOD:
            continue
        value = node.value[key]
        many = isinstance(value, list)
        for index, period in enumerate(value if many else [value]):
            if isinstance(period, dict) and before(period.get("end"), period.get("start")):
                path = f"{node.expression}.{key}" + (f"[{index}]" if many else "")
                issues.append(
                    Issue(
                        N_("error.invariant_period_order"),
                        {"element": path},
                        code="invariant",
                        expression=(path,),
                    )
                )
    return issues


# --- business rules (422) -------------------------------------------------------------


def business_issues(resource: dict[str, Any], *, now: dt.datetime) -> list[Issue]:
    return [
        issue
        for check in RULES.get(str(resource.get("resourceType")), ())
        for issue in check(resource, now)
    ]


@rule("Patient")
def _birth_and_death(patient: dict[str, Any], now: dt.datetime) -> Iterator[Issue]:
    birth = patient.get("birthDate")
    if in_future(birth, now):
        yield _future("Patient.birthDate")
    death = patient.get("deceasedDateTime")
    if in_future(death, now):
        yield _future("Patient.deceasedDateTime")
    elif before(death, birth):
        yield Issue(
            N_("error.rule_deceased_before_birth"),
            {"element": "Patient.deceasedDateTime"},
            code="business-rule",
            expression=("Patient.deceasedDateTime",),
        )


# Statuses under which a time still to come is the truth: an encounter planned (or a
# planned one cancelled), anything entered in error.
_NOT_YET = {"planned", "cancelled", "entered-in-error"}


@rule("Encounter")
def _encounter_started(encounter: dict[str, Any], now: dt.datetime) -> Iterator[Issue]:
    period = encounter.get("period")
    if encounter.get("status") in _NOT_YET or not isinstance(period, dict):
        return
    if in_future(period.get("start"), now):
        yield _future("Encounter.period.start")


@rule("Observation")
def _observation_made(observation: dict[str, Any], now: dt.datetime) -> Iterator[Issue]:
    if observation.get("status") == "entered-in-error":
        return
    period = observation.get("effectivePeriod")
    times = {
        "Observation.effectiveDateTime": observation.get("effectiveDateTime"),
        "Observation.effectiveInstant": observation.get("effectiveInstant"),
        "Observation.effectivePeriod.start": period.get("start")
        if isinstance(period, dict)
        else None,
        "Observation.issued": observation.get("issued"),
    }
    for expression, value in times.items():
        if in_future(value, now):
            yield _future(expression)


@rule("Immunization")
def _immunization_given(immunization: dict[str, Any], now: dt.datetime) -> Iterator[Issue]:
    if immunization.get("status") == "completed" and in_future(
        immunization.get("occurrenceDateTime"), now
    ):
        yield _future("Immunization.occurrenceDateTime")
