"""Consent business rules (issue 6, point 1): each broken rule names its element."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from consent.codes import ACT_CODE, ACT_REASON, PARTICIPATION_TYPE, RESOURCE_TYPES
from consent.engine import decide
from consent.errors import InvalidConsent
from consent.parse import compile_rules, parse_consent
from consent.policy import default_policy
from consent.validation import validate_consent
from puente.errors import InvalidResource
from tests.consent.builders import NOW, ORGANIZATIONS, caller, consent_json, provision, record
from translation.i18n import gettext

Edit = Callable[[dict[str, Any]], None]


def good() -> dict[str, Any]:
    """Juana lets El Paso's UMC see her records for treatment, except psychiatric ones,
    until the end of 2027."""
    return consent_json(
        provision(
            "permit",
            to=["umcep"],
            purposes=["TREAT", "ETREAT"],
            classes=["Observation", "Condition"],
            period=("2026-01-01", "2027-12-31"),
            nested=[provision("deny", labels=["PSY"], data_period=("2020", "2024"))],
        )
    )


def _issues(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (issue.expression[0], issue.message_key)
        for issue in validate_consent(resource, organizations=ORGANIZATIONS)
    ]


def test_a_good_consent_has_no_issues() -> None:
    assert _issues(good()) == []


def _set(path: str, value: Any) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = resource
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: int | str = int(last) if last.isdigit() else last
        if value is None:
            del node[key]
        else:
            node[key] = value

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        for one in edits:
            one(resource)

    return edit


def _data(meaning: str, reference: str) -> list[dict[str, Any]]:
    return [{"meaning": meaning, "reference": {"reference": reference}}]


NOT_A_BASE = {"coding": [{"system": ACT_CODE, "code": "IDSCL"}]}


CASES = [
    ("scope is not privacy", _set("scope", {"coding": [{"code": "research"}]}),
     "Consent.scope", "consent.scope_not_privacy"),
    ("status unknown", _set("status", "revoked"), "Consent.status", "consent.status_unknown"),
    ("patient missing", _set("patient", None), "Consent.patient", "consent.patient_missing"),
    ("patient is not a Patient", _set("patient", {"reference": "Group/1"}),
     "Consent.patient.reference", "consent.patient_reference"),
    ("category unknown", _set("category", [{"coding": [{"code": "x"}]}]),
     "Consent.category", "consent.category_unknown"),
    ("neither policy nor policyRule (ppc-1)", _set("policyRule", None),
     "Consent.policyRule", "consent.policy_missing"),
    ("policyRule contradicts the root type",
     _set("policyRule", {"coding": [{"system": ACT_CODE, "code": "OPTOUT"}]}),
     "Consent.provision.type", "consent.base_conflict"),
    ("no base rule", _both(_set("provision.type", None), _set("policyRule", NOT_A_BASE)),
     "Consent.provision.type", "consent.base_unknown"),
    ("period ends before it starts", _set("provision.period", {"start": "2027", "end": "2026"}),
     "Consent.provision.period", "consent.period_reversed"),
    ("period not a date", _set("provision.period", {"start": "soon"}),
     "Consent.provision.period", "consent.period_invalid"),
    ("dataPeriod reversed",
     _set("provision.provision.0.dataPeriod", {"start": "2024-02", "end": "2024-01"}),
     "Consent.provision.provision[0].dataPeriod", "consent.period_reversed"),
    ("nested provision without type", _set("provision.provision.0.type", None),
     "Consent.provision.provision[0].type", "consent.provision_type_missing"),
    ("actor without role", _set("provision.actor.0.role", None),
     "Consent.provision.actor[0].role", "consent.actor_role_missing"),
    ("actor role Puente does not apply",
     _set("provision.actor.0.role", {"coding": [{"system": PARTICIPATION_TYPE, "code": "AUT"}]}),
     "Consent.provision.actor[0].role", "consent.actor_role_unsupported"),
    ("actor is a Practitioner",
     _set("provision.actor.0.reference", {"reference": "Practitioner/1"}),
     "Consent.provision.actor[0].reference", "consent.actor_not_organization"),
    ("actor is an unknown Organization",
     _set("provision.actor.0.reference", {"reference": "Organization/nowhere"}),
     "Consent.provision.actor[0].reference", "consent.actor_unknown_organization"),
    ("purpose unknown", _set("provision.purpose.1", {"system": ACT_REASON, "code": "SHOPPING"}),
     "Consent.provision.purpose[1]", "consent.purpose_unknown"),
    ("purpose from another system",
     _set("provision.purpose.0", {"system": "urn:x", "code": "TREAT"}),
     "Consent.provision.purpose[0]", "consent.purpose_unknown"),
    ("class Puente does not store",
     _set("provision.class.1", {"system": RESOURCE_TYPES, "code": "Claim"}),
     "Consent.provision.class[1]", "consent.class_unknown"),
    ("security label unknown",
     _set("provision.provision.0.securityLabel.0", {"system": ACT_CODE, "code": "XYZ"}),
     "Consent.provision.provision[0].securityLabel[0]", "consent.label_unknown"),
    ("provision on clinical codes", _set("provision.code", [{"text": "diabetes"}]),
     "Consent.provision.code", "consent.code_unsupported"),
    ("data meaning related",
     _set("provision.data", _data("related", "Patient/1")),
     "Consent.provision.data[0].meaning", "consent.data_meaning_unsupported"),
    ("data instance of a type Puente does not store",
     _set("provision.data", _data("instance", "Claim/1")),
     "Consent.provision.data[0].reference", "consent.data_reference_invalid"),
    ("data authoredby an unknown Organization",
     _set("provision.data", _data("authoredby", "Organization/zz")),
     "Consent.provision.data[0].reference", "consent.actor_unknown_organization"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "expression", "key"), [pytest.param(*case[1:], id=case[0]) for case in CASES]
)
def test_each_rule_names_its_element(edit: Edit, expression: str, key: str) -> None:
    resource = good()
    edit(resource)
    assert _issues(resource) == [(expression, key)]


def test_provisions_nested_too_deep_are_refused() -> None:
    resource = good()
    node = resource["provision"]
    for _ in range(10):
        node["provision"] = [{"type": "permit"}]
        node = node["provision"][0]
    issues = validate_consent(resource, organizations=ORGANIZATIONS)
    assert [i.message_key for i in issues] == ["consent.provision_too_deep"]
    assert issues[0].expression[0].count(".provision") == 10


def test_policy_uri_satisfies_ppc1_when_the_root_says_the_base() -> None:
    resource = good()
    del resource["policyRule"]
    resource["policy"] = [{"uri": "https://puente.example/policies/cross-border"}]
    assert _issues(resource) == []


def test_issues_read_in_both_languages_without_patient_data() -> None:
    resource = good()
    resource["patient"] = {"reference": "Group/Juana-Perez"}
    (issue,) = validate_consent(resource, organizations=ORGANIZATIONS)
    english = gettext("en_US", issue.message_key, **issue.params)
    spanish = gettext("es_MX", issue.message_key, **issue.params)
    assert english == "Consent.patient.reference must reference a Patient as Patient/id."
    assert spanish == "Consent.patient.reference debe referirse a un Patient como Patient/id."
    assert "Juana" not in english + spanish
    assert issue.code == "business-rule"


def test_parse_consent_validates_then_compiles() -> None:
    rules = parse_consent(good(), organizations=ORGANIZATIONS)
    assert rules.consent == "Consent/c1"
    assert rules.patient == "hgcj-p1"
    assert rules.active
    assert rules.root.permit
    assert rules.root.recipients == frozenset({"Organization/umcep"})
    assert rules.root.purposes == frozenset({"TREAT", "ETREAT"})
    (deny,) = rules.root.children
    assert (deny.path, deny.permit) == ("Consent.provision.provision[0]", False)
    assert rules.summary.recipients == ("Organization/umcep",)
    assert rules.summary.end == "2027-12-31"


def test_parse_consent_refuses_bad_fhir_with_400_and_broken_rules_with_422() -> None:
    not_fhir = good()
    del not_fhir["category"]
    with pytest.raises(InvalidResource) as structure:
        parse_consent(not_fhir, organizations=ORGANIZATIONS)
    assert structure.value.status_code == 400
    assert structure.value.issues[0].expression == ("Consent.category",)

    broken = copy.deepcopy(good())
    broken["provision"]["actor"][0]["reference"] = {"reference": "Organization/nowhere"}
    broken["scope"] = {"coding": [{"code": "treatment"}]}
    with pytest.raises(InvalidConsent) as rule:
        parse_consent(broken, organizations=ORGANIZATIONS)
    assert rule.value.status_code == 422
    assert [i.expression[0] for i in rule.value.issues] == [
        "Consent.scope",
        "Consent.provision.actor[0].reference",
    ]


def test_a_full_r4_consent_parses_and_decides() -> None:
    """Shaped after the R4 examples (consent-example-*), with Puente's Organizations."""
    resource = {
        "resourceType": "Consent",
        "id": "juana-to-umcep",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/hgcj-p1"},
        "dateTime": "2026-02-01T10:30:00-07:00",
        "performer": [{"reference": "Patient/hgcj-p1"}],
        "organization": [{"reference": "Organization/hgcj"}],
        "sourceAttachment": {"contentType": "application/pdf", "title": "Consentimiento"},
        "policy": [{"authority": "https://www.gob.mx/inai", "uri": "https://puente.example/p"}],
        "verification": [{"verified": True, "verificationDate": "2026-02-01"}],
        "provision": {
            "type": "permit",
            "period": {"start": "2026-02-01", "end": "2027-01-31"},
            "actor": [
                {
                    "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP"}]},
                    "reference": {"reference": "Organization/umcep"},
                },
                {
                    "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "CST"}]},
                    "reference": {"reference": "Organization/hgcj"},
                },
            ],
            "purpose": [{"system": ACT_REASON, "code": "TREAT"}],
            "provision": [
                {
                    "type": "deny",
                    "dataPeriod": {"end": "2019-12-31"},
                },
                {
                    "type": "deny",
                    "data": [
                        {"meaning": "instance", "reference": {"reference": "Condition/hgcj-c9"}}
                    ],
                },
            ],
        },
    }
    rules = parse_consent(resource, organizations=ORGANIZATIONS)
    umc = caller("clinician", "umcep")
    recent = record("Condition", rid="c1", when=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    old = record("Condition", rid="c2", when=dt.datetime(2019, 6, 1, tzinfo=dt.UTC))
    withheld = record("Condition", rid="c9", when=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    other_side = record("Condition", "hgcj2", when=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    policy = default_policy()
    answers = {
        name: decide(umc, facts, [rules], policy, now=NOW).rule
        for name, facts in {
            "recent": recent,
            "old": old,
            "withheld": withheld,
            "another custodian": other_side,
        }.items()
    }
    assert answers == {
        "recent": "consent-permit",
        "old": "consent-deny",
        "withheld": "consent-deny",
        "another custodian": "no-consent",
    }
    later = NOW.replace(year=2027, month=2)
    assert decide(umc, recent, [rules], policy, now=later).rule == "no-consent"


def test_conditions_on_codes_puente_does_not_know_match_nothing() -> None:
    """Compiled without validation (a stored Consent from an older rule set): an unknown
    purpose system or data meaning narrows a permit to nothing rather than to everything."""
    foreign_purpose = consent_json(provision("permit", to=["umcep"]))
    foreign_purpose["provision"]["purpose"] = [{"system": "urn:other", "code": "TREAT"}]
    related = consent_json(provision("permit", to=["umcep"]))
    related["provision"]["data"] = [{"meaning": "related", "reference": {"reference": "X/1"}}]
    for resource in (foreign_purpose, related):
        decision = decide(caller(), record(), [compile_rules(resource)], default_policy(), now=NOW)
        assert decision.rule == "no-consent"
