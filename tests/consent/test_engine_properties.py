"""Properties of the engine alone, over generated patients, Consents, labels and callers.

The gate's own property test (every path in issue 6 point 4) builds on these; here the
pure rules: nothing crosses the border without an active permitting Consent (or a live
break-the-glass grant), an applicable deny always wins, Part 2 never goes to a recipient
the Consent does not name, and the order of Consents never matters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consent.codes import PART2
from consent.engine import (
    BreakGlass,
    ConsentRules,
    Decision,
    Provision,
    RecordFacts,
    Requester,
    decide,
)
from consent.parse import compile_rules
from consent.policy import Policy, default_policy
from tests.consent.builders import (
    COUNTRY_OF,
    NOW,
    caller,
    consent_json,
    provision,
    record,
)

HOSPITALS = sorted(COUNTRY_OF)
ACTORS = [*HOSPITALS, "mx", "us"]
PERSONS = [frozenset({"hgcj-a", "umcep-a"}), frozenset({"hgcj-b"}), frozenset({"thop-c"})]
PATIENT_IDS = sorted(set().union(*PERSONS))
ROLES = ["system", "clinician", "patient", "consent-officer", "analyst", "admin"]
PURPOSES = ["TREAT", "ETREAT", "HPAYMT", "HRESCH"]
TYPES = ["Observation", "Condition", "MedicationRequest", "Organization"]
LABELS = ["PSY", "HIV", "ETH", "42CFRPart2", "R", "V"]
DEFAULT = default_policy()
POLICIES = st.sampled_from([DEFAULT, dataclasses.replace(DEFAULT, part2_emergency_rule=True)])
DAYS = st.integers(min_value=-40, max_value=40).map(
    lambda d: (NOW + dt.timedelta(days=d)).date().isoformat()
)


def _maybe(items: list[str], size: int = 2) -> st.SearchStrategy[list[str]]:
    """No condition three times in four: most generated provisions then apply."""
    some = st.lists(st.sampled_from(items), min_size=1, max_size=size, unique=True)
    return st.one_of(st.just([]), st.just([]), st.just([]), some)


@st.composite
def provisions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    period = draw(st.none() | st.tuples(st.none() | DAYS, st.none() | DAYS))
    return provision(
        draw(st.sampled_from(["permit", "permit", "deny"] if depth == 0 else ["permit", "deny"])),
        to=draw(_maybe(ACTORS)),
        custodian=draw(_maybe(ACTORS, 1)),
        purposes=draw(_maybe(PURPOSES)),
        classes=draw(_maybe(TYPES[:3], 1)),
        labels=draw(_maybe(LABELS)),
        period=period if period and period[0] and period[1] and period[0] <= period[1] else None,
        nested=draw(st.lists(provisions(depth + 1), max_size=2)) if depth < 2 else [],
    )


@st.composite
def consent_lists(draw: st.DrawFn, patients: frozenset[str]) -> list[ConsentRules]:
    """Up to three Consents, mostly of the record's patient, mostly active."""
    count = draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3]))
    own = sorted(patients)
    return [
        compile_rules(
            consent_json(
                draw(provisions()),
                cid=f"c{index}",
                status=draw(
                    st.sampled_from(["active", "active", "active", "inactive", "rejected"])
                ),
                patient=draw(st.sampled_from([*own, *own, *own, *PATIENT_IDS])),
            )
        )
        for index in range(count)
    ]


@st.composite
def requesters(draw: st.DrawFn, owner: str) -> Requester:
    """Mostly clinicians of another hospital than the record's."""
    role = draw(st.sampled_from(["clinician"] * 6 + ROLES))
    others = [h for h in HOSPITALS if h != owner]
    system: str | None = draw(st.sampled_from([*others, *others, owner]))
    if role in ("patient", "analyst", "admin"):
        system = None
    grants = draw(
        st.lists(
            st.builds(
                BreakGlass,
                patient=st.sampled_from(PATIENT_IDS),
                expires=st.integers(-90, 90).map(lambda m: NOW + dt.timedelta(minutes=m)),
            ),
            max_size=1,
        )
    )
    return caller(
        role,
        system,
        purpose=draw(st.sampled_from(["TREAT", "TREAT", *PURPOSES])),
        patient=draw(st.sampled_from(PATIENT_IDS)) if role == "patient" else None,
        grants=grants if role == "clinician" else (),
    )


@st.composite
def records(draw: st.DrawFn) -> RecordFacts:
    return record(
        draw(st.sampled_from([*TYPES[:3], *TYPES])),
        draw(st.sampled_from(HOSPITALS)),
        rid=draw(st.sampled_from(["o1", "o2"])),
        patients=draw(st.sampled_from(PERSONS)),
        labels=draw(_maybe(LABELS, 3)),
    )


Scenario = tuple[Requester, RecordFacts, list[ConsentRules], Policy]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    rec = draw(records())
    return draw(requesters(rec.owner)), rec, draw(consent_lists(rec.patients)), draw(POLICIES)


def _crosses(req: Requester, rec: RecordFacts, policy: Policy) -> bool:
    """A record leaving its hospital for someone who is neither the patient nor reading
    directory data."""
    return (
        req.role != "patient"
        and rec.resource_type not in policy.directory_types
        and rec.owner != req.system
    )


def _live_grant(req: Requester, rec: RecordFacts) -> bool:
    return any(g.expires > NOW and g.patient in rec.patients for g in req.break_glass)


EXAMPLES = settings(max_examples=200, deadline=None)


@EXAMPLES
@given(scenarios())
def test_nothing_leaves_its_hospital_without_a_permitting_consent_or_a_live_grant(
    scenario: Scenario,
) -> None:
    req, rec, consents, policy = scenario
    decision = decide(req, rec, consents, policy, now=NOW)
    if not decision.permit or not _crosses(req, rec, policy):
        return
    assert req.role == "clinician"
    if decision.rule in ("break-the-glass", "part2-emergency"):
        assert _live_grant(req, rec)
        return
    assert decision.rule == "consent-permit"
    (deciding,) = [c for c in consents if c.consent == decision.consent]
    assert deciding.active
    assert deciding.patient in rec.patients
    assert req.purpose in policy.purposes
    # Without Consents and grants the same request is refused.
    bare = dataclasses.replace(req, break_glass=())
    assert not decide(bare, rec, [], policy, now=NOW).permit


def _consent(root: dict[str, Any], cid: str, rec: RecordFacts) -> ConsentRules:
    return compile_rules(consent_json(root, cid=cid, patient=min(rec.patients)))


def _all_labels(rec: RecordFacts) -> list[str]:
    return sorted({label.code for label in rec.labels} | {"42CFRPart2"})


@EXAMPLES
@given(scenarios(), st.sampled_from(ACTORS))
def test_an_applicable_deny_consent_always_wins(scenario: Scenario, actor: str) -> None:
    req, rec, consents, policy = scenario
    # A Consent that would let anyone see everything, and one denying `actor`.
    everything = _consent(provision("permit", labels=_all_labels(rec)), "everything", rec)
    deny = _consent(provision("deny", to=[actor]), "deny", rec)
    names_caller = f"Organization/{actor}" in (req.organization, req.country_organization)
    for ordered in ([*consents, everything, deny], [deny, everything, *consents]):
        decision = decide(req, rec, ordered, policy, now=NOW)
        if names_caller and _crosses(req, rec, policy) and decision.permit:
            assert decision.rule in ("break-the-glass", "part2-emergency")


@EXAMPLES
@given(scenarios())
def test_part2_only_to_a_named_recipient_and_always_with_the_notice(scenario: Scenario) -> None:
    req, rec, consents, policy = scenario
    part2 = dataclasses.replace(rec, labels=rec.labels | {PART2})
    # A Consent naming the caller's country, not its hospital: never enough for Part 2.
    country = (req.country or "mx").lower()
    owner = part2.owner
    whole_country = _consent(
        provision("permit", to=[country], custodian=[owner], labels=_all_labels(part2)),
        "country",
        part2,
    )
    decision = decide(req, part2, [*consents, whole_country], policy, now=NOW)
    if not decision.permit or not _crosses(req, part2, policy):
        return
    assert "redisclosure-notice" in {o.code for o in decision.obligations}
    if decision.rule == "part2-emergency":
        assert policy.part2_emergency_rule
        return
    assert decision.rule == "consent-permit"
    (deciding,) = [c for c in consents if c.consent == decision.consent]
    assert req.organization in _named(deciding)
    assert decision.provision is not None
    disclosers: set[str] = set()
    for node in _path_to(deciding.root, decision.provision):
        disclosers |= (node.sources or set()) | (node.authors or set())
    assert part2.owner_organization in disclosers
    assert "consent-summary" in {o.code for o in decision.obligations}


def _named(rules: ConsentRules) -> set[str]:
    found: set[str] = set()
    stack = [rules.root]
    while stack:
        node = stack.pop()
        found |= node.recipients or set()
        stack.extend(node.children)
    return found


@EXAMPLES
@given(scenarios())
def test_sensitive_labels_need_a_provision_that_names_them(scenario: Scenario) -> None:
    req, rec, consents, policy = scenario
    decision = decide(req, rec, consents, policy, now=NOW)
    if decision.rule != "consent-permit":
        return
    (deciding,) = [c for c in consents if c.consent == decision.consent]
    assert decision.provision is not None
    named: set[Any] = set()
    for node in _path_to(deciding.root, decision.provision):
        named |= node.labels or set()
    assert rec.labels & policy.sensitive_labels <= named


def _path_to(root: Provision, path: str) -> list[Provision]:
    """The provisions from the root down to the one at FHIRPath `path`."""
    nodes = [root]
    for index in re.findall(r"\.provision\[(\d+)\]", path):
        nodes.append(nodes[-1].children[int(index)])
    assert nodes[-1].path == path
    return nodes


@EXAMPLES
@given(scenarios())
def test_order_of_consents_never_matters_and_revoking_never_opens(scenario: Scenario) -> None:
    req, rec, consents, policy = scenario
    decision: Decision = decide(req, rec, consents, policy, now=NOW)
    assert decide(req, rec, consents[::-1], policy, now=NOW).permit == decision.permit
    revoked = [dataclasses.replace(c, active=False) for c in consents]
    if not decision.permit:
        assert not decide(req, rec, revoked, policy, now=NOW).permit


@EXAMPLES
@given(scenarios())
def test_analysts_and_admins_never_see_patient_data(scenario: Scenario) -> None:
    req, rec, consents, policy = scenario
    decision = decide(req, rec, consents, policy, now=NOW)
    if req.role in ("analyst", "admin") and rec.resource_type not in policy.directory_types:
        assert not decision.permit
    if req.role == "patient" and decision.permit and rec.resource_type != "Organization":
        assert req.patient in rec.patients
