"""Decisions per second of the pure consent engine (consent.engine.decide), one process.

A realistic mix of requests the disclosure gate sees, with every patient's Consents
compiled once beforehand (as the gate caches them per Consent version):
- 40 % a hospital reading its own records;
- 35 % a clinician on the other side reading records of patients with one to three
  Consents (nested provisions, deny exceptions, sensitive labels on 15 % of records);
- 10 % a patient reading their own records on both sides;
- 5 % break-the-glass, 5 % Part 2 records, 5 % patients without a Consent.
Prints the median of several timed rounds, for the mix and for the cross-border requests
alone (the costliest path), per second of CPU time and of wall-clock time. Aim (issue 6):
over 100,000/s.

    .venv/bin/python benchmarks/consent_decisions.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

from consent.codes import ACT_CODE, ACT_REASON, LOINC, PARTICIPATION_TYPE, Label
from consent.engine import BreakGlass, ConsentRules, RecordFacts, Requester, decide
from consent.parse import compile_rules
from consent.policy import Policy, default_policy

NOW = dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)
HOSPITALS = {"hgcj": "MX", "hgcj2": "MX", "umcep": "US", "thop": "US"}
TYPES = ("Observation", "Condition", "MedicationRequest", "Encounter", "Procedure")
SENSITIVE = ("PSY", "HIV", "ETH", "SDV")

Case = tuple[Requester, RecordFacts, Sequence[ConsentRules]]


def _actor(code: str) -> dict[str, Any]:
    return {
        "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP"}]},
        "reference": {"reference": f"Organization/{code}"},
    }


def _consent(rng: random.Random, patient: str, index: int, recipient: str) -> ConsentRules:
    """One of the shapes patients sign: share with a hospital or a country, with deny
    exceptions by class or label, sometimes a nested permit of one label."""
    shape = rng.random()
    root: dict[str, Any] = {
        "type": "permit",
        "period": {"start": "2026-01-01", "end": "2027-12-31"},
        "purpose": [{"system": ACT_REASON, "code": "TREAT"}],
        "actor": [_actor(recipient if shape < 0.6 else HOSPITALS[recipient].lower())],
    }
    nested: list[dict[str, Any]] = []
    if shape < 0.4:
        nested.append({"type": "deny", "class": [{"code": "MedicationRequest"}]})
    if 0.3 < shape < 0.7:
        label = rng.choice(SENSITIVE)
        nested.append({"type": "permit", "securityLabel": [{"system": ACT_CODE, "code": label}]})
    if shape > 0.9:
        root = {"type": "deny", "provision": [{**root, "type": "permit"}]}
    elif nested:
        root["provision"] = nested
    return compile_rules(
        {
            "resourceType": "Consent",
            "id": f"{patient}-c{index}",
            "status": "active",
            "patient": {"reference": f"Patient/{patient}"},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
            "dateTime": "2026-01-15",
            "provision": root,
        }
    )


def _requester(system: str | None, role: str, **extra: Any) -> Requester:
    country = HOSPITALS.get(system or "")
    return Requester(
        role=role,
        system=system,
        organization=f"Organization/{system}" if system else None,
        country=country,
        country_organization=f"Organization/{country.lower()}" if country else None,
        purpose="TREAT",
        **extra,
    )


def _record(
    rng: random.Random, owner: str, patients: frozenset[str], labels: set[Label]
) -> RecordFacts:
    country = HOSPITALS[owner]
    if rng.random() < 0.15:
        labels = labels | {Label(ACT_CODE, rng.choice(SENSITIVE))}
    return RecordFacts(
        resource_type=rng.choice(TYPES),
        resource_id=f"{owner}-{rng.randrange(10**6)}",
        owner=owner,
        owner_country=country,
        owner_organization=f"Organization/{owner}",
        owner_country_organization=f"Organization/{country.lower()}",
        patients=patients,
        labels=frozenset(labels),
        start=NOW - dt.timedelta(days=rng.randrange(2000)),
        end=None,
    )


def workload(count: int, seed: int = 6) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    part2 = {Label(ACT_CODE, "42CFRPart2"), Label(ACT_CODE, "NORDSCLCD")}
    for n in range(count):
        mx, us = f"hgcj-{n % 5000}", f"umcep-{n % 5000}"
        patients = frozenset({mx, us})
        consents = [_consent(rng, mx, i, "umcep") for i in range(rng.randint(1, 3))]
        draw = rng.random()
        case: Case
        if draw < 0.40:
            case = (_requester("umcep", "clinician"), _record(rng, "umcep", patients, set()), [])
        elif draw < 0.75:
            record = _record(rng, rng.choice(("hgcj", "hgcj2")), patients, set())
            case = (_requester("umcep", "clinician"), record, consents)
        elif draw < 0.85:
            owner = rng.choice(("hgcj", "umcep"))
            case = (
                _requester(None, "patient", patient=mx),
                _record(rng, owner, patients, set()),
                [],
            )
        elif draw < 0.90:
            grant = BreakGlass(patient=mx, expires=NOW + dt.timedelta(minutes=30))
            who = _requester("umcep", "clinician", break_glass=(grant,))
            case = (who, _record(rng, "hgcj", patients, set()), [])
        elif draw < 0.95:
            case = (
                _requester("hgcj", "clinician"),
                _record(rng, "umcep", patients, part2),
                consents,
            )
        else:
            case = (_requester("umcep", "clinician"), _record(rng, "hgcj", patients, set()), [])
        cases.append(case)
    return cases


def rate(cases: Sequence[Case], policy: Policy, rounds: int) -> list[tuple[float, float]]:
    """Decisions per second of CPU time the process got, and of wall-clock time: on a
    shared machine the first is the engine's speed, the second what the load left."""
    figures = []
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for request, record, consents in cases:
            decide(request, record, consents, policy, now=NOW)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        figures.append((len(cases) / cpu, len(cases) / wall))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    policy = default_policy()
    cases = workload(args.requests)
    crossing = [c for c in cases if c[0].role == "clinician" and c[1].owner != c[0].system]
    rate(cases[:2000], policy, 1)  # warm-up
    for name, subset in (("mix", cases), ("cross-border only", crossing)):
        permitted = sum(decide(r, f, c, policy, now=NOW).permit for r, f, c in subset)
        figures = rate(subset, policy, args.rounds)
        cpu = statistics.median(f[0] for f in figures)
        wall = statistics.median(f[1] for f in figures)
        print(
            f"consent decisions, {name}: {cpu:,.0f}/s of CPU time ({wall:,.0f}/s wall clock), "
            f"median of {args.rounds} rounds of {len(subset):,} requests "
            f"({permitted / len(subset):.0%} permitted)"
        )


if __name__ == "__main__":
    main()
