"""Clinical data of two hospitals for the search tests, stored through `store.put`."""

from __future__ import annotations

from typing import Any

from exchange import store
from puente.db import session_factory
from tests.factories import organizations

LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
CURP = "https://www.gob.mx/curp"


def patient(res_id: str, family: str, given: str, birth: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": res_id,
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        **extra,
    }


def observation(
    res_id: str, subject: str, code: str, value: float, unit: str, **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": res_id,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }


HGCJ: list[dict[str, Any]] = [
    patient(
        "hgcj-1001",
        "Ramírez Anchondo",
        "José",
        "1985-04-12",
        identifier=[{"system": CURP, "value": "RAAJ850412HCHMNS05"}],
        address=[{"city": "Ciudad Juárez", "state": "Chihuahua", "postalCode": "32000"}],
        generalPractitioner=[{"reference": "Practitioner/hgcj-dr1"}],
        managingOrganization={"reference": "Organization/hgcj"},
    ),
    patient("hgcj-1002", "Núñez Peña", "María", "1990", gender="female"),
    {
        "resourceType": "Practitioner",
        "id": "hgcj-dr1",
        "active": True,
        "name": [{"family": "Hernández", "given": ["Lucía"], "prefix": ["Dra."]}],
    },
    {
        "resourceType": "Encounter",
        "id": "hgcj-enc1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": "Patient/hgcj-1001"},
        "period": {"start": "2024-03-15T08:00:00-06:00", "end": "2024-03-15T12:00:00-06:00"},
        "participant": [{"individual": {"reference": "Practitioner/hgcj-dr1"}}],
        "serviceProvider": {"reference": "Organization/hgcj"},
    },
    observation(
        "hgcj-obs-glucose",
        "Patient/hgcj-1001",
        "2339-0",
        98,
        "mg/dL",
        effectiveDateTime="2024-03-15T10:30:00-06:00",
        encounter={"reference": "Encounter/hgcj-enc1"},
    ),
    observation(
        "hgcj-obs-a1c",
        "Patient/hgcj-1001",
        "4548-4",
        5.44,
        "%",
        effectivePeriod={"start": "2024-05-01", "end": "2024-05-03"},
    ),
    observation(
        "hgcj-obs-maria", "Patient/hgcj-1002", "4548-4", 5.46, "%", effectiveDateTime="2023"
    ),
    {
        "resourceType": "Condition",
        "id": "hgcj-cond-dm2",
        "subject": {"reference": "Patient/hgcj-1001"},
        "code": {
            "coding": [{"system": ICD10, "code": "E11.9", "display": "Diabetes mellitus tipo 2"}]
        },
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "onsetDateTime": "2019",
        "recordedDate": "2024-03-15",
    },
    {
        "resourceType": "Provenance",
        "id": "hgcj-prov1",
        "target": [{"reference": "Patient/hgcj-1001"}],
        "recorded": "2024-03-15T12:00:00Z",
        "agent": [{"who": {"reference": "Organization/hgcj"}}],
    },
]

UMCEP: list[dict[str, Any]] = [
    patient("umcep-2001", "Ramírez", "José", "1985-04-12"),
    {
        "resourceType": "Provenance",
        "id": "umcep-prov1",
        "target": [{"reference": "Patient/hgcj-1001"}],
        "recorded": "2024-03-16T12:00:00Z",
        "agent": [{"who": {"reference": "Organization/umcep"}}],
    },
]


def load(*extra_hgcj: dict[str, Any]) -> None:
    """Both hospitals' Organizations and the records above, committed."""
    with session_factory()() as session:
        organizations(session)
        for resource in [*HGCJ, *extra_hgcj]:
            store.put(session, owner="hgcj", owner_country="MX", resource=dict(resource))
        for resource in UMCEP:
            store.put(session, owner="umcep", owner_country="US", resource=dict(resource))
        session.commit()


def ids(body: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in body.get("entry", []) if e["search"]["mode"] == mode]
