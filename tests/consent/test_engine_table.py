"""The decision table: every default rule and the R4 nested-provision semantics.

Each row reads: who asks, which record, under which Consents -> permit or deny, and the
rule that decided. Juana has a Juárez record (hgcj-p1) and an El Paso one (umcep-p1);
`umcep` and `thop` are El Paso hospitals, `hgcj` and `hgcj2` Juárez ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import pytest

from consent.engine import ConsentRules, Decision, RecordFacts, Requester, decide
from consent.policy import Policy, default_policy
from tests.consent.builders import (
    JUANA_MX,
    JUANA_US,
    NOW,
    PEDRO,
    PEDRO_MX,
    caller,
    consent,
    grant,
    provision,
    record,
    share,
)

DEFAULT = default_policy()
EMERGENCY_RULE = dataclasses.replace(DEFAULT, part2_emergency_rule=True)
US_TREATS_AT_HOME = dataclasses.replace(
    DEFAULT, domestic_without_consent={"US": frozenset({"TREAT"}), "MX": frozenset()}
)

US_DOCTOR = caller("clinician", "umcep")
ANALYST = caller("analyst", None)
JUANA_HERSELF = caller("patient", None, patient=JUANA_MX)
IN_ER = caller(grants=[grant()])  # an El Paso clinician who broke the glass for Juana
MX_IN_ER = caller("clinician", "hgcj", grants=[grant()])
OBS = record()
OBS_US = record(owner="umcep")
PART2_OBS = record(owner="umcep", labels=["42CFRPart2", "NORDSCLCD"])
DENY_ALL = consent(provision("deny"), cid="c2")
OTHER_US_DOCTOR = caller("clinician", "thop")
MX_DOCTOR = caller("clinician", "hgcj")


def row(
    name: str,
    who: Requester,
    what: RecordFacts,
    consents: Sequence[ConsentRules],
    expected: str,
    policy: Policy = DEFAULT,
) -> object:
    """One line of the table; `expected` is `permit <rule>` or `deny <rule>`."""
    answer, rule = expected.split()
    return pytest.param(who, what, consents, answer == "permit", rule, policy, id=name)


NESTED_PERMIT_IN_DENY = consent(
    provision("deny", nested=[provision("permit", to=["umcep"], purposes=["TREAT"])])
)
NESTED_DENY_IN_PERMIT = consent(
    provision("permit", to=["us"], nested=[provision("deny", classes=["MedicationRequest"])])
)
THREE_LEVELS = consent(
    provision(
        "permit",
        to=["us"],
        nested=[
            provision("deny", classes=["Observation"], nested=[provision("permit", to=["umcep"])])
        ],
    )
)
SIBLINGS = consent(
    provision(
        "deny",
        nested=[provision("permit", to=["umcep"]), provision("deny", purposes=["TREAT"])],
    )
)
PSY_PERMITTED = consent(
    provision("permit", to=["umcep"], nested=[provision("permit", labels=["PSY"])])
)
PSY_ONLY_TO_UMCEP = consent(
    provision(
        "permit",
        to=["us"],
        nested=[provision("deny", labels=["PSY"], nested=[provision("permit", to=["umcep"])])],
    )
)
HIV_DENIED = consent(provision("permit", to=["us"], nested=[provision("deny", labels=["HIV"])]))
PART2_NAMED = consent(
    provision("permit", to=["hgcj"], custodian=["umcep"], labels=["42CFRPart2"]), patient=JUANA_US
)
PART2_COUNTRY = consent(
    provision("permit", to=["mx"], custodian=["umcep"], labels=["42CFRPart2"]), patient=JUANA_US
)
PART2_NO_LABEL = consent(provision("permit", to=["hgcj"], custodian=["umcep"]), patient=JUANA_US)
PART2_NO_SOURCE = consent(provision("permit", to=["hgcj"], labels=["42CFRPart2"]), patient=JUANA_US)
PART2_US_SOURCE = consent(
    provision("permit", to=["hgcj"], custodian=["us"], labels=["42CFRPart2"]), patient=JUANA_US
)
PART2_BY_ORGANIZATION = consent(
    provision("permit", to=["hgcj"], labels=["42CFRPart2"]), patient=JUANA_US, organization="umcep"
)
PART2_AUTHORED_BY = consent(
    provision("permit", to=["hgcj"], authored_by=["umcep"], labels=["42CFRPart2"]),
    patient=JUANA_US,
)

TABLE = [
    # Directory data and roles that never see patient data.
    row(
        "analyst reads an Organization",
        ANALYST,
        record("Organization", patients=frozenset()),
        [],
        "permit directory",
    ),
    row(
        "analyst reads an Observation even under a Consent",
        ANALYST,
        OBS,
        [share("us")],
        "deny no-patient-data",
    ),
    row("admin reads an Observation", caller("admin", None), OBS, [], "deny no-patient-data"),
    # Right of access.
    row("patient reads own Juárez record", JUANA_HERSELF, OBS, [], "permit patient-own"),
    row(
        "patient reads own El Paso record (linked)", JUANA_HERSELF, OBS_US, [], "permit patient-own"
    ),
    row(
        "patient reads someone else's record",
        caller("patient", None, patient=PEDRO_MX),
        OBS,
        [],
        "deny patient-other",
    ),
    # A hospital's own records.
    row("clinician reads own hospital's record", MX_DOCTOR, OBS, [], "permit own-system"),
    row("system reads its own record", caller("system", "hgcj"), OBS, [], "permit own-system"),
    row(
        "consent officer reads own hospital's record",
        caller("consent-officer", "hgcj"),
        OBS,
        [],
        "permit own-system",
    ),
    row(
        "own hospital wins over a deny Consent",
        MX_DOCTOR,
        OBS,
        [consent(provision("deny"))],
        "permit own-system",
    ),
    row(
        "consent officer reads the other side",
        caller("consent-officer", "umcep"),
        OBS,
        [share("umcep")],
        "deny role-own-only",
    ),
    row(
        "system reads the other side",
        caller("system", "umcep"),
        OBS,
        [share("umcep")],
        "deny role-own-only",
    ),
    # Crossing the border needs an active Consent for that recipient and purpose.
    row("no Consent", US_DOCTOR, OBS, [], "deny no-consent"),
    row("Consent names the hospital", US_DOCTOR, OBS, [share("umcep")], "permit consent-permit"),
    row("Consent names the country", US_DOCTOR, OBS, [share("us")], "permit consent-permit"),
    row(
        "Consent names another hospital", OTHER_US_DOCTOR, OBS, [share("umcep")], "deny no-consent"
    ),
    row(
        "Consent for another purpose",
        US_DOCTOR,
        OBS,
        [share("umcep", purposes=["HPAYMT"])],
        "deny no-consent",
    ),
    row(
        "purpose the policy never lets out",
        caller(purpose="HRESCH"),
        OBS,
        [share("umcep", purposes=["HRESCH"])],
        "deny purpose-not-allowed",
    ),
    row(
        "Consent on the linked El Paso record",
        US_DOCTOR,
        OBS,
        [share("umcep", patient=JUANA_US)],
        "permit consent-permit",
    ),
    row(
        "Consent of another patient",
        US_DOCTOR,
        OBS,
        [share("umcep", patient=PEDRO_MX)],
        "deny no-consent",
    ),
    row(
        "record of another patient",
        US_DOCTOR,
        record(patients=PEDRO),
        [share("umcep")],
        "deny no-consent",
    ),
    row(
        "same country, other hospital, default policy",
        OTHER_US_DOCTOR,
        OBS_US,
        [],
        "deny no-consent",
    ),
    row(
        "same country, policy allows treatment",
        OTHER_US_DOCTOR,
        OBS_US,
        [],
        "permit domestic-purpose",
        US_TREATS_AT_HOME,
    ),
    row(
        "same country policy never crosses the border",
        US_DOCTOR,
        OBS,
        [],
        "deny no-consent",
        US_TREATS_AT_HOME,
    ),
    # Expiry and revocation.
    row(
        "revoked Consent (inactive)",
        US_DOCTOR,
        OBS,
        [share("umcep", status="inactive")],
        "deny no-consent",
    ),
    row("rejected Consent", US_DOCTOR, OBS, [share("umcep", status="rejected")], "deny no-consent"),
    row("proposed Consent", US_DOCTOR, OBS, [share("umcep", status="proposed")], "deny no-consent"),
    row(
        "Consent period ended",
        US_DOCTOR,
        OBS,
        [consent(provision("permit", to=["umcep"], period=("2025-01-01", "2026-11-23")))],
        "deny no-consent",
    ),
    row(
        "Consent period ends today (whole day)",
        US_DOCTOR,
        OBS,
        [consent(provision("permit", to=["umcep"], period=("2025-01-01", "2026-11-24")))],
        "permit consent-permit",
    ),
    row(
        "Consent period not started",
        US_DOCTOR,
        OBS,
        [consent(provision("permit", to=["umcep"], period=("2026-12-01", None)))],
        "deny no-consent",
    ),
    # Base rule from policyRule.
    row(
        "OPTIN without a root type permits",
        US_DOCTOR,
        OBS,
        [consent(provision(to=["umcep"]), rule="OPTIN")],
        "permit consent-permit",
    ),
    row(
        "OPTOUT without a root type denies",
        US_DOCTOR,
        OBS,
        [consent(provision(to=["umcep"]), rule="OPTOUT")],
        "deny consent-deny",
    ),
    # A deny wins across Consents, whatever their order.
    row("permit then deny", US_DOCTOR, OBS, [share("umcep"), DENY_ALL], "deny consent-deny"),
    row("deny then permit", US_DOCTOR, OBS, [DENY_ALL, share("umcep")], "deny consent-deny"),
    row(
        "deny for another recipient does not apply",
        US_DOCTOR,
        OBS,
        [share("umcep"), consent(provision("deny", to=["thop"]), cid="c2")],
        "permit consent-permit",
    ),
    # Nested provisions: the deepest match decides.
    row(
        "nested permit inside a deny: named recipient",
        US_DOCTOR,
        OBS,
        [NESTED_PERMIT_IN_DENY],
        "permit consent-permit",
    ),
    row(
        "nested permit inside a deny: anyone else",
        OTHER_US_DOCTOR,
        OBS,
        [NESTED_PERMIT_IN_DENY],
        "deny consent-deny",
    ),
    row(
        "nested permit inside a deny: other purpose",
        caller(purpose="HPAYMT"),
        OBS,
        [NESTED_PERMIT_IN_DENY],
        "deny consent-deny",
    ),
    row(
        "nested deny inside a permit: other class",
        US_DOCTOR,
        OBS,
        [NESTED_DENY_IN_PERMIT],
        "permit consent-permit",
    ),
    row(
        "nested deny inside a permit: that class",
        US_DOCTOR,
        record("MedicationRequest"),
        [NESTED_DENY_IN_PERMIT],
        "deny consent-deny",
    ),
    row(
        "third level permit beats second level deny",
        US_DOCTOR,
        OBS,
        [THREE_LEVELS],
        "permit consent-permit",
    ),
    row(
        "second level deny for the others",
        OTHER_US_DOCTOR,
        OBS,
        [THREE_LEVELS],
        "deny consent-deny",
    ),
    row("siblings at one depth: deny wins", US_DOCTOR, OBS, [SIBLINGS], "deny consent-deny"),
    # Which records: class, data, data period, custodian.
    row(
        "class limits the records",
        US_DOCTOR,
        record("Condition"),
        [consent(provision("permit", to=["umcep"], classes=["Observation"]))],
        "deny no-consent",
    ),
    row(
        "data instance: that record",
        US_DOCTOR,
        record(rid="o1"),
        [consent(provision("permit", to=["umcep"], instances=["Observation/hgcj-o1"]))],
        "permit consent-permit",
    ),
    row(
        "data instance: another record",
        US_DOCTOR,
        record(rid="o2"),
        [consent(provision("permit", to=["umcep"], instances=["Observation/hgcj-o1"]))],
        "deny no-consent",
    ),
    row(
        "authoredby one hospital",
        US_DOCTOR,
        record(owner="hgcj"),
        [consent(provision("permit", to=["umcep"], authored_by=["hgcj"]))],
        "permit consent-permit",
    ),
    row(
        "authoredby: another hospital's record",
        US_DOCTOR,
        record(owner="hgcj2"),
        [consent(provision("permit", to=["umcep"], authored_by=["hgcj"]))],
        "deny no-consent",
    ),
    row(
        "authoredby a country",
        US_DOCTOR,
        record(owner="hgcj2"),
        [consent(provision("permit", to=["umcep"], authored_by=["mx"]))],
        "permit consent-permit",
    ),
    row(
        "custodian named",
        US_DOCTOR,
        record(owner="hgcj"),
        [consent(provision("permit", to=["umcep"], custodian=["hgcj"]))],
        "permit consent-permit",
    ),
    row(
        "custodian: another hospital",
        US_DOCTOR,
        record(owner="hgcj2"),
        [consent(provision("permit", to=["umcep"], custodian=["hgcj"]))],
        "deny no-consent",
    ),
    # Sensitive labels need explicit permission.
    row(
        "PSY record under a general Consent",
        US_DOCTOR,
        record(labels=["PSY"]),
        [share("umcep")],
        "deny label-not-permitted",
    ),
    row(
        "PSY record, PSY permitted",
        US_DOCTOR,
        record(labels=["PSY"]),
        [PSY_PERMITTED],
        "permit consent-permit",
    ),
    row(
        "PSY+HIV record, only PSY permitted",
        US_DOCTOR,
        record(labels=["PSY", "HIV"]),
        [PSY_PERMITTED],
        "deny label-not-permitted",
    ),
    row(
        "very restricted record under a general Consent",
        US_DOCTOR,
        record(labels=["V"]),
        [share("umcep")],
        "deny label-not-permitted",
    ),
    row(
        "restricted (R) is not a sensitive label",
        US_DOCTOR,
        record(labels=["R"]),
        [share("umcep")],
        "permit consent-permit",
    ),
    row(
        "permit nested in a deny of PSY is about PSY",
        US_DOCTOR,
        record(labels=["PSY"]),
        [PSY_ONLY_TO_UMCEP],
        "permit consent-permit",
    ),
    row(
        "the deny of PSY for the others",
        OTHER_US_DOCTOR,
        record(labels=["PSY"]),
        [PSY_ONLY_TO_UMCEP],
        "deny consent-deny",
    ),
    row(
        "permit nested in a deny of PSY: HIV not named",
        US_DOCTOR,
        record(labels=["PSY", "HIV"]),
        [PSY_ONLY_TO_UMCEP],
        "deny label-not-permitted",
    ),
    row(
        "denied label: HIV record",
        US_DOCTOR,
        record(labels=["HIV"]),
        [HIV_DENIED],
        "deny consent-deny",
    ),
    row("denied label: other record", US_DOCTOR, OBS, [HIV_DENIED], "permit consent-permit"),
    row(
        "general Consent plus one permitting the label",
        US_DOCTOR,
        record(labels=["PSY"]),
        [share("umcep"), PSY_PERMITTED],
        "permit consent-permit",
    ),
    # 42 CFR Part 2: the recipient named, the label permitted.
    row(
        "Part 2: Consent names the hospital",
        MX_DOCTOR,
        PART2_OBS,
        [PART2_NAMED],
        "permit consent-permit",
    ),
    row(
        "Part 2: Consent names only the country",
        MX_DOCTOR,
        PART2_OBS,
        [PART2_COUNTRY],
        "deny part2-recipient-not-named",
    ),
    row(
        "Part 2: label not permitted",
        MX_DOCTOR,
        PART2_OBS,
        [PART2_NO_LABEL],
        "deny label-not-permitted",
    ),
    row(
        "Part 2: the program is not named as discloser",
        MX_DOCTOR,
        PART2_OBS,
        [PART2_NO_SOURCE],
        "deny part2-source-not-named",
    ),
    row(
        "Part 2: a whole country is not the program",
        MX_DOCTOR,
        PART2_OBS,
        [PART2_US_SOURCE],
        "deny part2-source-not-named",
    ),
    row(
        "Part 2: Consent.organization is the program",
        MX_DOCTOR,
        PART2_OBS,
        [PART2_BY_ORGANIZATION],
        "permit consent-permit",
    ),
    row(
        "Part 2: data authoredby the program",
        MX_DOCTOR,
        PART2_OBS,
        [PART2_AUTHORED_BY],
        "permit consent-permit",
    ),
    row(
        "Part 2: own program reads its record",
        caller("clinician", "umcep"),
        PART2_OBS,
        [],
        "permit own-system",
    ),
    # Break-the-glass.
    row("break-the-glass opens a record", IN_ER, OBS, [], "permit break-the-glass"),
    row(
        "break-the-glass opens a sensitive record",
        IN_ER,
        record(labels=["PSY"]),
        [],
        "permit break-the-glass",
    ),
    row(
        "break-the-glass over a deny Consent",
        IN_ER,
        OBS,
        [consent(provision("deny"))],
        "permit break-the-glass",
    ),
    row(
        "break-the-glass on the linked record",
        caller(grants=[grant(JUANA_US)]),
        OBS,
        [],
        "permit break-the-glass",
    ),
    row("break-the-glass expired", caller(grants=[grant(minutes=-1)]), OBS, [], "deny no-consent"),
    row(
        "break-the-glass for another patient",
        caller(grants=[grant(PEDRO_MX)]),
        OBS,
        [],
        "deny no-consent",
    ),
    row("break-the-glass: Part 2 without 2.51", MX_IN_ER, PART2_OBS, [], "deny no-consent"),
    row(
        "break-the-glass: Part 2 under 2.51",
        MX_IN_ER,
        PART2_OBS,
        [],
        "permit part2-emergency",
        EMERGENCY_RULE,
    ),
    row(
        "break-the-glass: Part 2 with a naming Consent",
        MX_IN_ER,
        PART2_OBS,
        [PART2_NAMED],
        "permit consent-permit",
    ),
]


@pytest.mark.parametrize(("who", "what", "consents", "permit", "rule", "policy"), TABLE)
def test_decision_table(
    who: Requester,
    what: RecordFacts,
    consents: Sequence[ConsentRules],
    permit: bool,
    rule: str,
    policy: Policy,
) -> None:
    decision = decide(who, what, consents, policy, now=NOW)
    assert (decision.permit, decision.rule) == (permit, rule)


def _decide(who: Requester, what: RecordFacts, *consents: ConsentRules) -> Decision:
    return decide(who, what, consents, DEFAULT, now=NOW)


def test_the_deciding_provision_and_consent_are_named() -> None:
    permit = _decide(US_DOCTOR, OBS, NESTED_PERMIT_IN_DENY)
    deny = _decide(OTHER_US_DOCTOR, OBS, NESTED_PERMIT_IN_DENY)
    assert (permit.consent, permit.provision) == ("Consent/c1", "Consent.provision.provision[0]")
    assert (deny.consent, deny.provision) == ("Consent/c1", "Consent.provision")
    assert permit.message_key == "consent.rule.consent_permit"
    assert deny.message_key == "consent.rule.consent_deny"


def test_the_deny_that_wins_is_the_denying_consent() -> None:
    decision = _decide(US_DOCTOR, OBS, share("umcep"), consent(provision("deny"), cid="no"))
    assert decision.consent == "Consent/no"


def test_part2_disclosure_carries_the_notice_and_the_consent_summary() -> None:
    decision = _decide(MX_DOCTOR, PART2_OBS, PART2_NAMED)
    assert [o.code for o in decision.obligations] == ["redisclosure-notice", "consent-summary"]
    notice, summary = decision.obligations
    assert notice.message_key == "consent.notice.part2_redisclosure"
    assert summary.summary is not None
    assert summary.summary.params() == {
        "consent": "Consent/c1",
        "date": "2026-01-15",
        "recipients": "Organization/hgcj",
        "purposes": "-",
        "end": "-",
    }


def test_part2_emergency_disclosure_carries_the_notice() -> None:
    who = MX_IN_ER
    decision = decide(who, PART2_OBS, [], EMERGENCY_RULE, now=NOW)
    assert [o.code for o in decision.obligations] == [
        "break-the-glass-notice",
        "redisclosure-notice",
    ]


def test_other_disclosures_carry_no_part2_notice() -> None:
    assert _decide(US_DOCTOR, OBS, share("umcep")).obligations == ()


def test_break_the_glass_possible_only_where_a_grant_would_open_the_record() -> None:
    assert _decide(US_DOCTOR, OBS).btg_possible
    assert _decide(US_DOCTOR, OBS, consent(provision("deny"))).btg_possible
    # Already granted, or not a clinician, or Part 2 without the 2.51 rule: nothing to add.
    part2 = PART2_OBS
    granted = _decide(MX_IN_ER, part2)
    assert (granted.permit, granted.btg_possible) == (False, False)
    assert not _decide(caller("consent-officer"), OBS).btg_possible
    assert not _decide(caller("system"), OBS).btg_possible
    assert not _decide(MX_DOCTOR, part2).btg_possible
    assert decide(MX_DOCTOR, part2, [], EMERGENCY_RULE, now=NOW).btg_possible
    # Permitted records never ask for it; records about no patient cannot be opened.
    assert not _decide(US_DOCTOR, OBS, share("umcep")).btg_possible
    assert not _decide(US_DOCTOR, record("Provenance", patients=frozenset())).btg_possible


def test_revocation_takes_effect_on_the_next_decision() -> None:
    active = share("umcep")
    revoked = share("umcep", status="inactive")
    assert _decide(US_DOCTOR, OBS, active).permit
    assert not _decide(US_DOCTOR, OBS, revoked).permit


def test_data_period() -> None:
    only_2025 = consent(provision("permit", to=["umcep"], data_period=("2025", "2025")))
    deny_2025 = consent(
        provision("permit", to=["umcep"], nested=[provision("deny", data_period=("2025", "2025"))])
    )
    in_2025 = record(when=dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    last_instant = record(when=dt.datetime(2025, 12, 31, 23, 59, tzinfo=dt.UTC))
    in_2024 = record(when=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
    undated = OBS
    assert _decide(US_DOCTOR, in_2025, only_2025).permit
    assert _decide(US_DOCTOR, last_instant, only_2025).permit
    assert not _decide(US_DOCTOR, in_2024, only_2025).permit
    # Doubt never discloses: an undated record is outside a permit's data period and
    # inside a deny's.
    assert not _decide(US_DOCTOR, undated, only_2025).permit
    assert not _decide(US_DOCTOR, in_2025, deny_2025).permit
    assert _decide(US_DOCTOR, in_2024, deny_2025).permit
    assert not _decide(US_DOCTOR, undated, deny_2025).permit
