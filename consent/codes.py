"""Code systems and codes the consent modules read (DOMAIN.md, "Labels and purposes")."""

from __future__ import annotations

from typing import NamedTuple

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
OBLIGATION_POLICY = "http://terminology.hl7.org/CodeSystem/v3-ObligationPolicy"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/consentcategorycodes"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"


class Label(NamedTuple):
    """One security label (`meta.security` coding): a tuple, so hashing it is cheap."""

    system: str
    code: str


PART2 = Label(ACT_CODE, "42CFRPart2")
# NORDSCLCD is an obligation code; HL7's security labelling puts it in v3-ActCode too
# (the ObligationPolicy system is accepted on input for senders that use it).
NO_REDISCLOSURE = Label(ACT_CODE, "NORDSCLCD")
PART2_LABELS = frozenset({PART2, NO_REDISCLOSURE})

# Security label systems a Consent provision may name and a sender may use.
LABEL_SYSTEMS = frozenset({ACT_CODE, CONFIDENTIALITY, OBLIGATION_POLICY})
CONFIDENTIALITY_CODES = frozenset({"U", "L", "M", "N", "R", "V"})
SENSITIVITY_CODES = frozenset(
    {"ETH", "HIV", "PSY", "SDV", "SEX", "STD", "SOC", "GDIS", "SICKLE", "BH", "TBOO"}
)
PRIVACY_LAW_CODES = frozenset({"42CFRPart2"})
OBLIGATION_CODES = frozenset({"NORDSCLCD", "NOREUSE", "ENCRYPT", "DELAU"})
KNOWN_LABEL_CODES: dict[str, frozenset[str]] = {
    ACT_CODE: SENSITIVITY_CODES | PRIVACY_LAW_CODES | OBLIGATION_CODES,
    CONFIDENTIALITY: CONFIDENTIALITY_CODES,
    OBLIGATION_POLICY: OBLIGATION_CODES,
}

# Purposes of use a Consent may name: the v3 PurposeOfUse value set (v3-ActReason).
PURPOSES = frozenset(
    {
        "TREAT",
        "ETREAT",
        "BTG",
        "CAREMGT",
        "CLINTRCH",
        "CLINTRL",
        "HPAYMT",
        "CLMATTCH",
        "COVAUTH",
        "COVERAGE",
        "HOPERAT",
        "HMARKT",
        "HRESCH",
        "PUBHLTH",
        "POPHLTH",
        "DISASTER",
        "PATRQT",
        "FAMRQT",
        "PWATRNY",
        "SUPNWK",
        "HLEGAL",
        "HDIRECT",
        "HCOMPL",
        "HSYSADMIN",
    }
)

# Actor roles (v3-ParticipationType): who receives, and whose records (the custodian).
RECIPIENT_ROLES = frozenset({"IRCP", "PRCP"})
SOURCE_ROLES = frozenset({"CST"})

# Base policy codes (v3-ActCode consent directive types) for Consent.policyRule.
PERMIT_BASE = frozenset({"OPTIN", "OPTINR"})
DENY_BASE = frozenset({"OPTOUT", "OPTOUTE"})

# Consent.category codes Puente recognises for a privacy consent.
CATEGORIES = {
    LOINC: frozenset({"59284-0", "57016-8", "64292-6"}),
    ACT_CODE: frozenset({"IDSCL", "INFA", "INFAO", "INFASO", "IRDSCL"}),
    CONSENT_CATEGORY: frozenset({"npp", "emrgonly"}),
}
