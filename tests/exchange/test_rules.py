"""The rules module alone: future dates with the clock skew, partial dates as ranges, per-1."""

from __future__ import annotations

import datetime as dt
from typing import Any

from exchange import rules

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


def _keys(resource: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(i.message_key, i.expression) for i in rules.business_issues(resource, now=NOW)]


def test_future_allows_clock_skew_and_the_earliest_time_zone() -> None:
    assert not rules.in_future("2026-11-24T09:04:00Z", NOW)
    assert rules.in_future("2026-11-24T09:06:00Z", NOW)
    assert not rules.in_future("2026-11-24T10:00:00+02:00", NOW)  # 08:00 UTC
    # Kiritimati (UTC+14) reaches 25 Nov at 10:00 UTC: a date is future until some zone has it.
    assert not rules.in_future("2026-11-24", NOW)
    assert rules.in_future("2026-11-25", NOW)
    assert not rules.in_future("2026-11-25", NOW + dt.timedelta(hours=1))
    assert rules.in_future("2027", NOW)
    assert not rules.in_future("2026", NOW)
    assert not rules.in_future("not a date", NOW)


def test_before_reads_partial_dates_as_ranges() -> None:
    assert rules.before("2024-03-04", "2024-03-05")
    assert not rules.before("2024-03-05", "2024-03")  # within March: not known to be wrong
    assert not rules.before("2024-03-05T10:00:00Z", "2024-03-05T10:00:00Z")
    assert rules.before("2024-03-05T09:59:00Z", "2024-03-05T10:00:00Z")
    assert not rules.before(None, "2024")


def test_patient_birth_and_death() -> None:
    assert _keys({"resourceType": "Patient", "birthDate": "2030-01-01"}) == [
        ("error.rule_in_future", ("Patient.birthDate",))
    ]
    assert _keys(
        {"resourceType": "Patient", "birthDate": "1990-05-01", "deceasedDateTime": "1989"}
    ) == [("error.rule_deceased_before_birth", ("Patient.deceasedDateTime",))]
    assert (
        _keys({"resourceType": "Patient", "birthDate": "1990-05-01", "deceasedDateTime": "1990"})
        == []
    )
    assert _keys({"resourceType": "Patient", "deceasedDateTime": "2026-12-01T00:00:00Z"}) == [
        ("error.rule_in_future", ("Patient.deceasedDateTime",))
    ]


def test_encounters_may_be_planned_ahead_but_not_started_ahead() -> None:
    ahead = {"start": "2026-12-01T10:00:00-07:00"}
    finished = {"resourceType": "Encounter", "status": "finished", "period": ahead}
    assert _keys(finished) == [("error.rule_in_future", ("Encounter.period.start",))]
    assert _keys({**finished, "status": "planned"}) == []


def test_observation_effective_and_issued() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "effectivePeriod": {"start": "2027-01-01"},
        "issued": "2026-11-24T09:30:00Z",
    }
    assert _keys(observation) == [
        ("error.rule_in_future", ("Observation.effectivePeriod.start",)),
        ("error.rule_in_future", ("Observation.issued",)),
    ]
    assert _keys({**observation, "status": "entered-in-error"}) == []


def test_immunization_given_in_the_future() -> None:
    given = {"resourceType": "Immunization", "status": "completed", "occurrenceDateTime": "2027"}
    assert _keys(given) == [("error.rule_in_future", ("Immunization.occurrenceDateTime",))]
    assert _keys({**given, "status": "not-done"}) == []


def test_period_order_invariant_anywhere() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "period": {"start": "2024-03-05T10:00:00Z", "end": "2024-03-05T09:00:00Z"},
        "location": [
            {"location": {"reference": "Location/x"}, "period": {"start": "2024", "end": "2024"}},
            {"location": {"reference": "Location/y"}, "period": {"start": "2024", "end": "2023"}},
        ],
        "extension": [{"url": "urn:x", "valuePeriod": {"start": "2024-02", "end": "2024-01"}}],
    }
    issues = rules.invariant_issues(encounter)
    assert [(i.code, i.expression) for i in issues] == [
        ("invariant", ("Encounter.period",)),
        ("invariant", ("Encounter.location[1].period",)),
        ("invariant", ("Encounter.extension[0].valuePeriod",)),
    ]
