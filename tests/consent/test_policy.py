"""Jurisdiction policies are a settings file: the shipped defaults and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent.codes import ACT_CODE, CONFIDENTIALITY, Label
from consent.engine import decide
from consent.errors import InvalidPolicy
from consent.policy import DEFAULT_POLICY, default_policy, load_policy, parse_policy
from tests.consent.builders import NOW, caller, record, share

SHIPPED = DEFAULT_POLICY.read_text(encoding="utf-8")


def test_shipped_defaults() -> None:
    policy = default_policy()
    assert policy.own_record_roles == {"system", "clinician", "consent-officer"}
    assert policy.other_record_roles == {"clinician"}
    assert policy.never_patient_data_roles == {"analyst", "admin"}
    assert policy.patient_access
    assert "TREAT" in policy.purposes
    assert "HRESCH" not in policy.purposes
    assert policy.domestic_without_consent == {"MX": frozenset(), "US": frozenset()}
    assert {Label(ACT_CODE, c) for c in ("ETH", "HIV", "PSY", "SDV", "SEX", "42CFRPart2")} <= (
        policy.sensitive_labels
    )
    assert Label(CONFIDENTIALITY, "V") in policy.sensitive_labels
    assert policy.part2_named_hospital_required
    assert not policy.part2_emergency_rule
    assert (policy.btg_duration_minutes, policy.btg_purpose) == (60, "ETREAT")
    assert policy.part2_notice_key == "consent.notice.part2_redisclosure"


def test_an_operator_file_changes_the_rules(tmp_path: Path) -> None:
    file = tmp_path / "research.toml"
    file.write_text(SHIPPED.replace('"PATRQT"]', '"PATRQT", "HRESCH"]'), encoding="utf-8")
    researcher = caller(purpose="HRESCH")
    consents = [share("umcep", purposes=["HRESCH"])]
    assert not decide(researcher, record(), consents, default_policy(), now=NOW).permit
    assert decide(researcher, record(), consents, load_policy(file), now=NOW).permit


BAD = [
    ("not TOML", "version = ", "not valid TOML"),
    ("unknown role", SHIPPED.replace('other_records = ["clinician"]', 'other_records = ["nurse"]'),
     "roles.other_records.0"),
    ("unknown purpose", SHIPPED.replace('"PATRQT"]', '"PARTY"]'), "'PARTY' is not a purpose"),
    ("unknown label code", SHIPPED.replace('"STD", ', '"STDX", '), "unknown codes ['STDX']"),
    ("notice key not in the catalogs",
     SHIPPED.replace('"consent.notice.break_the_glass"', '"consent.notice.nothing"'),
     "break_the_glass.notice_key"),
    ("misspelt setting", SHIPPED.replace("emergency_rule =", "emergency_rules ="),
     "part2.emergency_rules: Extra inputs are not permitted"),
    ("grant longer than the maximum",
     SHIPPED.replace("duration_minutes = 60", "duration_minutes = 600"),
     "duration_minutes is longer than max_duration_minutes"),
    ("analysts given records",
     SHIPPED.replace('other_records = ["clinician"]', 'other_records = ["clinician", "analyst"]'),
     "both in never_patient_data"),
    ("another version", SHIPPED.replace("version = 1", "version = 2"), "version"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "says"), [pytest.param(*b[1:], id=b[0]) for b in BAD])
def test_a_bad_policy_file_is_refused_clearly(tmp_path: Path, text: str, says: str) -> None:
    file = tmp_path / "policy.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidPolicy) as refused:
        load_policy(file)
    assert str(refused.value).startswith(f"consent policy {file}: ")
    assert says in str(refused.value)


def test_a_missing_policy_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InvalidPolicy, match="cannot be read"):
        load_policy(tmp_path / "absent.toml")


def test_parse_policy_names_its_source() -> None:
    with pytest.raises(InvalidPolicy, match=r"^consent policy PUENTE_CONSENT_POLICY: "):
        parse_policy("version = 1", source="PUENTE_CONSENT_POLICY")
