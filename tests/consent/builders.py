"""Small builders for the consent tests: callers, records and Consent JSON that read like
the sentences of the decision table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi.testclient import TestClient

from consent.codes import (
    ACT_CODE,
    ACT_REASON,
    CONFIDENTIALITY,
    CONSENT_SCOPE,
    LOINC,
    PARTICIPATION_TYPE,
    RESOURCE_TYPES,
    Label,
)
from consent.engine import BreakGlass, ConsentRules, RecordFacts, Requester
from consent.parse import compile_rules

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)

# One person, two records: Juana's Juárez record and her El Paso record (MPI link).
JUANA_MX, JUANA_US = "hgcj-p1", "umcep-p1"
JUANA = frozenset({JUANA_MX, JUANA_US})
PEDRO_MX = "hgcj-p2"
PEDRO = frozenset({PEDRO_MX})

COUNTRY_OF = {"hgcj": "MX", "hgcj2": "MX", "umcep": "US", "thop": "US"}
ORGANIZATIONS: dict[str, str | None] = {
    "Organization/mx": None,
    "Organization/us": None,
    **{f"Organization/{code}": f"Organization/{c.lower()}" for code, c in COUNTRY_OF.items()},
}


def label(code: str) -> Label:
    return Label(CONFIDENTIALITY if code in ("R", "V", "N") else ACT_CODE, code)


def caller(
    role: str = "clinician",
    system: str | None = "umcep",
    *,
    purpose: str = "TREAT",
    patient: str | None = None,
    grants: Sequence[BreakGlass] = (),
) -> Requester:
    country = COUNTRY_OF.get(system or "")
    return Requester(
        role=role,
        system=system,
        organization=f"Organization/{system}" if system else None,
        country=country,
        country_organization=f"Organization/{country.lower()}" if country else None,
        purpose=purpose,
        patient=patient,
        break_glass=tuple(grants),
    )


def grant(patient: str = JUANA_MX, minutes: int = 30) -> BreakGlass:
    return BreakGlass(patient=patient, expires=NOW + dt.timedelta(minutes=minutes))


def record(
    resource_type: str = "Observation",
    owner: str = "hgcj",
    *,
    rid: str = "o1",
    patients: frozenset[str] = JUANA,
    labels: Iterable[str] = (),
    when: dt.datetime | None = None,
) -> RecordFacts:
    country = COUNTRY_OF.get(owner)
    return RecordFacts(
        resource_type=resource_type,
        resource_id=f"{owner}-{rid}",
        owner=owner,
        owner_country=country,
        owner_organization=f"Organization/{owner}",
        owner_country_organization=f"Organization/{country.lower()}" if country else None,
        patients=patients,
        labels=frozenset(label(code) for code in labels),
        start=when,
        end=when,
    )


def provision(
    kind: str | None = None,
    *,
    to: Iterable[str] = (),
    custodian: Iterable[str] = (),
    purposes: Iterable[str] = (),
    classes: Iterable[str] = (),
    labels: Iterable[str] = (),
    instances: Iterable[str] = (),
    authored_by: Iterable[str] = (),
    period: tuple[str | None, str | None] | None = None,
    data_period: tuple[str | None, str | None] | None = None,
    nested: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A Consent.provision; `to` and `custodian` are Organization codes (`umcep`, `us`)."""
    out: dict[str, Any] = {}
    if kind:
        out["type"] = kind
    actors = [_actor("IRCP", code) for code in to] + [_actor("CST", code) for code in custodian]
    if actors:
        out["actor"] = actors
    if purposes:
        out["purpose"] = [{"system": ACT_REASON, "code": p} for p in purposes]
    if classes:
        out["class"] = [{"system": RESOURCE_TYPES, "code": c} for c in classes]
    if labels:
        out["securityLabel"] = [{"system": label(c).system, "code": c} for c in labels]
    data = [{"meaning": "instance", "reference": {"reference": r}} for r in instances]
    data += [
        {"meaning": "authoredby", "reference": {"reference": f"Organization/{o}"}}
        for o in authored_by
    ]
    if data:
        out["data"] = data
    if period:
        out["period"] = {k: v for k, v in zip(("start", "end"), period, strict=True) if v}
    if data_period:
        out["dataPeriod"] = {k: v for k, v in zip(("start", "end"), data_period, strict=True) if v}
    if nested:
        out["provision"] = list(nested)
    return out


def _actor(role: str, code: str) -> dict[str, Any]:
    return {
        "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": role}]},
        "reference": {"reference": f"Organization/{code}"},
    }


def consent_json(
    root: dict[str, Any] | None = None,
    *,
    cid: str = "c1",
    status: str = "active",
    patient: str = JUANA_MX,
    rule: str | None = None,
    organization: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": "2026-01-15",
        "policyRule": {"coding": [{"system": ACT_CODE, "code": rule or _rule_of(root)}]},
    }
    if organization:
        resource["organization"] = [{"reference": f"Organization/{organization}"}]
    if root is not None:
        resource["provision"] = root
    return resource


def _rule_of(root: dict[str, Any] | None) -> str:
    return "OPTOUT" if (root or {}).get("type") == "deny" else "OPTIN"


def consent(
    root: dict[str, Any] | None = None,
    *,
    cid: str = "c1",
    status: str = "active",
    patient: str = JUANA_MX,
    rule: str | None = None,
    organization: str | None = None,
) -> ConsentRules:
    return compile_rules(
        consent_json(
            root, cid=cid, status=status, patient=patient, rule=rule, organization=organization
        )
    )


def share(*to: str, purposes: Iterable[str] = ("TREAT",), **kwargs: Any) -> ConsentRules:
    """The usual cross-border Consent: permit these recipients for these purposes."""
    return consent(provision("permit", to=to, purposes=purposes), **kwargs)


def break_glass(client: TestClient, patient_id: str, headers: dict[str, str]) -> None:
    """The clinician of `headers` breaks the glass for `patient_id` (201, or the test fails)."""
    response = client.post(
        f"/fhir/Patient/{patient_id}/$break-the-glass",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Unconscious in the ER, no history"}],
        },
        headers={**headers, "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.text
