"""The demo scenario: two hospital systems across the border, their people, a SMART app.

Everything is written through the same service functions operators and hospitals use.
Loaded once: a second run finds the systems registered and only prints how to call.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from consent import breakglass_service as btg
from consent import service as labelling
from consent.codes import ACT_CODE, ACT_REASON, CONSENT_SCOPE, LOINC, PARTICIPATION_TYPE
from demo.codes import ICD10_CM, ICD10_WHO, UCUM
from demo.generator import CURP_SYSTEM, SSN_SYSTEM, generate
from exchange import bulk, export_jobs, store, writes
from exchange import service as exchange
from exchange.matching import review as mpi_review
from puente.auth import service as auth
from puente.auth.caller import Caller
from puente.auth.models import UserAccount
from puente.auth.scopes import Role, grant
from puente.db import unit_of_work, utcnow
from puente.settings import get_settings

# Development only (`puente demo` refuses production): every demo account's password.
DEMO_PASSWORD = "puente-demo-2026"  # noqa: S105
DEMO_TOKEN_TTL = 12 * 3600
SYNTHETIC_PATIENTS = 1000
PEOPLE_ROLES = (Role.CLINICIAN, Role.PATIENT, Role.CONSENT_OFFICER, Role.ANALYST, Role.ADMIN)


@dataclass(frozen=True)
class DemoSystem:
    code: str
    name: str
    country: str
    clinician: dict[str, object]
    patient: dict[str, object]
    records: tuple[dict[str, object], ...] = ()  # the demo patient's own, written after it


def _condition(
    res_id: str,
    patient: str,
    system: str,
    code: str,
    display: str,
    recorded: str,
    **fields: object,
) -> dict[str, object]:
    return {
        "resourceType": "Condition",
        "id": res_id,
        "subject": {"reference": f"Patient/{patient}"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "recordedDate": recorded,
        **fields,
    }


HGCJ = DemoSystem(
    code="hgcj",
    name="Hospital General de Ciudad Juárez",
    country="MX",
    clinician={
        "resourceType": "Practitioner",
        "id": "hgcj-demo-clinician",
        "active": True,
        "name": [
            {"family": "Hernández López", "given": ["María", "Guadalupe"], "prefix": ["Dra."]}
        ],
        "communication": [
            {"coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]},
            {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]},
        ],
    },
    patient={
        "resourceType": "Patient",
        "id": "hgcj-demo-patient",
        "active": True,
        "identifier": [{"system": "https://www.gob.mx/curp", "value": "RAAL850412HCHMNS01"}],
        "name": [{"family": "Ramírez Anchondo", "given": ["José", "Luis"]}],
        "gender": "male",
        "birthDate": "1985-04-12",
        "telecom": [
            {"system": "phone", "value": "+52 656 555 0142"},
            {"system": "email", "value": "jose.ramirez@example.org"},
        ],
        "address": [{"city": "Ciudad Juárez", "state": "CHH", "country": "MX"}],
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]},
                "preferred": True,
            }
        ],
    },
    # José's Juárez chart: what his Consent lets El Paso see (the diabetes and its lab),
    # and an anxiety diagnosis on the psychiatry list (PSY) that it does not.
    records=(
        _condition(
            "hgcj-demo-condition-dm",
            "hgcj-demo-patient",
            ICD10_WHO,
            "E11.9",
            "Diabetes mellitus tipo 2 sin complicaciones",
            "2024-02-19",
        ),
        {
            "resourceType": "Observation",
            "id": "hgcj-demo-observation-hba1c",
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
            "code": {
                "coding": [
                    {
                        "system": LOINC,
                        "code": "4548-4",
                        "display": "Hemoglobina A1c/Hemoglobina total en sangre",
                    }
                ]
            },
            "subject": {"reference": "Patient/hgcj-demo-patient"},
            "effectiveDateTime": "2026-10-07T09:30:00-06:00",
            "valueQuantity": {"value": 7.8, "unit": "%", "system": UCUM, "code": "%"},
        },
        _condition(
            "hgcj-demo-condition-anxiety",
            "hgcj-demo-patient",
            ICD10_WHO,
            "F41.1",
            "Trastorno de ansiedad generalizada",
            "2025-06-30",
        ),
    ),
)
UMCEP = DemoSystem(
    code="umcep",
    name="University Medical Center of El Paso",
    country="US",
    clinician={
        "resourceType": "Practitioner",
        "id": "umcep-demo-clinician",
        "active": True,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "name": [{"family": "Chávez", "given": ["Robert"], "prefix": ["Dr."]}],
        "communication": [
            {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]},
            {"coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]},
        ],
    },
    patient={
        "resourceType": "Patient",
        "id": "umcep-demo-patient",
        "active": True,
        "name": [{"family": "Ramirez", "given": ["Joe", "L."]}],
        "gender": "male",
        "birthDate": "1985-12-04",
        "telecom": [{"system": "phone", "value": "+1 915 555 0188"}],
        "address": [{"city": "El Paso", "state": "TX", "country": "US"}],
    },
    # A diagnosis on the psychiatry list of ICD-10-CM (F20-F69): stored with the
    # sensitivity label PSY beside it, shown in meta.security (consent/labels.py).
    records=(
        _condition(
            "umcep-demo-condition-psy",
            "umcep-demo-patient",
            ICD10_CM,
            "F32.9",
            "Major depressive disorder, single episode, unspecified",
            "2026-09-14",
        ),
        # Recorded by El Paso's opioid treatment program, a 42 CFR Part 2 program (PART2):
        # labelled 42CFRPart2 and NORDSCLCD for the program, not for the code.
        _condition(
            "umcep-demo-condition-oud",
            "umcep-demo-patient",
            ICD10_CM,
            "F11.20",
            "Opioid dependence, uncomplicated",
            "2026-08-03",
            recorder={"reference": "HealthcareService/umcep-demo-otp"},
        ),
    ),
)

# El Paso's opioid treatment program: a HealthcareService of UMC that the operator
# registered as a 42 CFR Part 2 program (`puente consent part2 add`).
PART2_PROGRAM: dict[str, object] = {
    "resourceType": "HealthcareService",
    "id": "umcep-demo-otp",
    "active": True,
    "providedBy": {"reference": "Organization/umcep"},
    "name": "UMC Opioid Treatment Program",
}

# Ana, a Juárez patient who has given no Consent: her records never cross the border
# unless a clinician breaks the glass. She is the break-the-glass episode below: brought
# unconscious to the El Paso ER, where she is registered as "Ana Gutierrez".
ANA: dict[str, object] = {
    "resourceType": "Patient",
    "id": "hgcj-demo-ana",
    "active": True,
    "name": [{"family": "Gutiérrez Holguín", "given": ["Ana", "Sofía"]}],
    "gender": "female",
    "birthDate": "1990-07-19",
    "telecom": [
        {"system": "phone", "value": "+52 656 555 0163"},
        {"system": "email", "value": "ana.gutierrez@example.org"},
    ],
    "address": [{"city": "Ciudad Juárez", "state": "CHH", "country": "MX"}],
    "communication": [
        {
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]},
            "preferred": True,
        }
    ],
}
ANA_RECORDS: tuple[dict[str, object], ...] = (
    _condition(
        "hgcj-demo-ana-asthma",
        "hgcj-demo-ana",
        ICD10_WHO,
        "J45.9",
        "Asma, no especificada",
        "2019-05-06",
    ),
)
ANA_EL_PASO: dict[str, object] = {
    "resourceType": "Patient",
    "id": "umcep-demo-ana",
    "active": True,
    "name": [{"family": "Gutierrez", "given": ["Ana"]}],
    "gender": "female",
    "address": [{"city": "El Paso", "state": "TX", "country": "US"}],
}
# The El Paso ER physician who broke the glass for Ana (no demo account: the `$CLINICIAN`
# token is Dr. Chávez's, so the walkthrough's answers do not change when her grant lapses).
ER_CLINICIAN: dict[str, object] = {
    "resourceType": "Practitioner",
    "id": "umcep-demo-er-clinician",
    "active": True,
    "name": [{"family": "Olivas", "given": ["Elena"], "prefix": ["Dr."]}],
}
# The curated people and records each system writes beside its own demo patient.
EXTRA: dict[str, tuple[dict[str, object], ...]] = {
    HGCJ.code: (ANA, *ANA_RECORDS),
    UMCEP.code: (PART2_PROGRAM, ER_CLINICIAN, ANA_EL_PASO),
}
SYSTEMS = (HGCJ, UMCEP)

# People registered on both sides in ways that leave a matcher in doubt (DOMAIN.md "People
# and their names"): a nickname and a single surname with a month-first birth date; an
# English given name with a hyphenated family and another phone. The matcher sends them to
# the review queue, where a consent officer decides. (The demo's own patient pair above,
# `Joe L. Ramirez` born "1985-12-04", is the third.)
DOUBTFUL: tuple[tuple[dict[str, object], dict[str, object]], ...] = (
    (
        {
            "resourceType": "Patient",
            "id": "hgcj-demo-doubtful-1",
            "name": [{"family": "Torres Villalobos", "given": ["María", "Guadalupe"]}],
            "gender": "female",
            "birthDate": "1979-06-03",
            "telecom": [{"system": "phone", "value": "+52 656 555 0170"}],
            "address": [{"city": "Ciudad Juárez", "state": "CHH", "country": "MX"}],
        },
        {
            "resourceType": "Patient",
            "id": "umcep-demo-doubtful-1",
            "name": [{"family": "Torres", "given": ["Lupe"]}],
            "gender": "female",
            "birthDate": "1979-03-06",
            "address": [{"city": "El Paso", "state": "TX", "country": "US"}],
        },
    ),
    (
        {
            "resourceType": "Patient",
            "id": "hgcj-demo-doubtful-2",
            "name": [{"family": "Nevárez Ochoa", "given": ["Jesús", "Alberto"]}],
            "gender": "male",
            "birthDate": "1992-11-21",
            "telecom": [{"system": "phone", "value": "+52 656 555 0191"}],
            "address": [{"city": "Ciudad Juárez", "state": "CHH", "country": "MX"}],
        },
        {
            "resourceType": "Patient",
            "id": "umcep-demo-doubtful-2",
            "name": [{"family": "Nevarez-Ochoa", "given": ["Jesse"]}],
            "gender": "male",
            "birthDate": "1992-11-21",
            "telecom": [{"system": "phone", "value": "+1 915 555 0131"}],
            "address": [{"city": "El Paso", "state": "TX", "country": "US"}],
        },
    ),
)


def email(role: Role, code: str) -> str:
    return f"{role.value}@{code}"


def _subject(role: Role, system: DemoSystem) -> str | None:
    if role is Role.CLINICIAN:
        return f"Practitioner/{system.clinician['id']}"
    if role is Role.PATIENT:
        return f"Patient/{system.patient['id']}"
    return None


# José, the Juárez demo patient, lets every hospital of the United States (the country's
# Organization, which each US hospital is partOf) see his records for treatment; HGCJ's
# consent officer records it through the FHIR write path, Puente's Consent rules included.
CONSENT: dict[str, object] = {
    "resourceType": "Consent",
    "id": "hgcj-demo-consent",
    "status": "active",
    "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
    "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Consent"}]}],
    "patient": {"reference": f"Patient/{HGCJ.patient['id']}"},
    "dateTime": "2026-11-02",
    "organization": [{"reference": "Organization/hgcj"}],
    "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
    "provision": {
        "type": "permit",
        "period": {"start": "2026-11-02"},
        "actor": [
            {
                "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP"}]},
                "reference": {"reference": "Organization/us"},
            }
        ],
        "purpose": [{"system": ACT_REASON, "code": "TREAT"}],
    },
}


# Joe (José's El Paso record) lets HGCJ, by name, see what El Paso's Part 2 program holds
# on him (42 CFR 2.31: a Part 2 record needs a Consent naming the recipient and the
# discloser, and its labels permitted explicitly); UMC's consent officer records it. His
# depression diagnosis (PSY) is not in it, so it stays in El Paso.
PART2_CONSENT: dict[str, object] = {
    "resourceType": "Consent",
    "id": "umcep-demo-consent-part2",
    "status": "active",
    "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
    "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Consent"}]}],
    "patient": {"reference": f"Patient/{UMCEP.patient['id']}"},
    "dateTime": "2026-11-05",
    "organization": [{"reference": "Organization/umcep"}],
    "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
    "provision": {
        "type": "permit",
        "period": {"start": "2026-11-05"},
        "actor": [
            {
                "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP"}]},
                "reference": {"reference": "Organization/hgcj"},
            },
            {
                "role": {"coding": [{"system": PARTICIPATION_TYPE, "code": "CST"}]},
                "reference": {"reference": "Organization/umcep"},
            },
        ],
        "purpose": [{"system": ACT_REASON, "code": "TREAT"}],
        "securityLabel": [
            {"system": ACT_CODE, "code": "42CFRPart2"},
            {"system": ACT_CODE, "code": "ETH"},
        ],
    },
}


def _officer(session: Session, officer: UserAccount) -> Caller:
    return dataclasses.replace(
        auth.person_caller(session, officer), scopes=grant(Role.CONSENT_OFFICER, None)
    )


def _record_consents(session: Session, officers: dict[str, UserAccount]) -> None:
    for code, consent in ((HGCJ.code, CONSENT), (UMCEP.code, PART2_CONSENT)):
        writes.update(
            session,
            _officer(session, officers[code]),
            resource_type="Consent",
            res_id=str(consent["id"]),
            body=dict(consent),
        )


def _register_part2_program(session: Session) -> None:
    """Before El Paso's records are written, so that they are labelled as they arrive."""
    labelling.add_part2_program(
        session,
        owner=UMCEP.code,
        reference=f"HealthcareService/{PART2_PROGRAM['id']}",
        actor="demo",
        now=utcnow(),
    )


# The break-the-glass episode waiting for review: Ana arrives unconscious at the El Paso
# ER, where she is registered as "Ana Gutierrez". HGCJ's consent officer (the MPI's
# steward) links her two records by hand, and Dr. Olivas breaks the glass for El Paso's
# record, which opens the Juárez one she has not consented to share. The notice goes, in
# Spanish, to the address Juárez has for Ana.
BTG_REASON = (
    "Unconscious on arrival at the ER after a road accident; her sister says she is "
    "treated in Ciudad Juárez for asthma."
)


def _clinician(practitioner: dict[str, object]) -> Caller:
    reference = f"Practitioner/{practitioner['id']}"
    return Caller(
        subject=reference,
        role=Role.CLINICIAN,
        org_code=UMCEP.code,
        country=UMCEP.country,
        scopes=grant(Role.CLINICIAN, None),
        fhir_user=reference,
    )


def _link_jose(session: Session, officer: UserAccount) -> None:
    """José's two registrations (`José Luis Ramírez Anchondo` in Juárez, `Joe L. Ramirez`
    with a month-first birth date in El Paso) leave the matcher in doubt; HGCJ's consent
    officer, the MPI's steward, links them after a call to the patient."""
    mpi_review.link_by_hand(
        session,
        _officer(session, officer),
        first=f"Patient/{HGCJ.patient['id']}",
        second=f"Patient/{UMCEP.patient['id']}",
    )


def _break_glass_episode(session: Session, officer: UserAccount) -> None:
    mpi_review.link_by_hand(
        session,
        _officer(session, officer),
        first=f"Patient/{ANA['id']}",
        second=f"Patient/{ANA_EL_PASO['id']}",
    )
    clinician = _clinician(ER_CLINICIAN)
    granted = btg.break_glass(
        session,
        clinician,
        patient_id=str(ANA_EL_PASO["id"]),
        reason=BTG_REASON,
        minutes=None,
        now=utcnow(),
    )
    btg.record_audit(session, clinician, granted)


# Dr. Chávez at El Paso reads José's Juárez record, and finds it by search, under José's
# Consent (treatment by the United States' hospitals): through the store's services, which
# write each disclosure to the audit trail, so José's accounting of disclosures (`$PATIENT`)
# names El Paso's hospital, the record and the time.
def _cross_border_reads(session: Session) -> None:
    clinician = _clinician(UMCEP.clinician)
    jose = str(HGCJ.patient["id"])
    exchange.read(session, clinician, resource_type="Patient", res_id=jose)
    request = exchange.parse("Patient", [("_id", jose)], lenient=False)
    found = exchange.search(session, clinician, resource_type="Patient", request=request)
    if [r["id"] for r in found.resources] != [jose]:
        raise RuntimeError("José's Consent did not open his Juárez record to El Paso")


# José's visit to the Juárez ER last August, which his Consent lets El Paso's clinicians see:
# `Patient/$everything` as Dr. Chávez gathers it with his El Paso record (linked by hand in
# the break-the-glass episode below) and names each resource's hospital in meta.source.
JUAREZ_VISIT: tuple[dict[str, object], ...] = (
    {
        "resourceType": "Encounter",
        "id": "hgcj-demo-encounter-er",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": f"Patient/{HGCJ.patient['id']}"},
        "participant": [{"individual": {"reference": f"Practitioner/{HGCJ.clinician['id']}"}}],
        "period": {"start": "2026-08-20T09:30:00-06:00", "end": "2026-08-20T13:00:00-06:00"},
        "serviceProvider": {"reference": "Organization/hgcj"},
    },
    {
        "resourceType": "Condition",
        "id": "hgcj-demo-condition-asthma",
        "subject": {"reference": f"Patient/{HGCJ.patient['id']}"},
        "encounter": {"reference": "Encounter/hgcj-demo-encounter-er"},
        "code": {
            "coding": [
                {"system": "http://hl7.org/fhir/sid/icd-10", "code": "J45.9", "display": "Asma"}
            ]
        },
        "recordedDate": "2026-08-20",
    },
    {
        "resourceType": "Observation",
        "id": "hgcj-demo-observation-glucose",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "2339-0", "display": "Glucosa"}]},
        "subject": {"reference": f"Patient/{HGCJ.patient['id']}"},
        "encounter": {"reference": "Encounter/hgcj-demo-encounter-er"},
        "effectiveDateTime": "2026-08-20T10:15:00-06:00",
        "valueQuantity": {
            "value": 182,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
    },
)


def _juarez_visit(session: Session) -> None:
    for resource in JUAREZ_VISIT:
        store.put(session, owner=HGCJ.code, owner_country=HGCJ.country, resource=dict(resource))


def _print_everything(console: Console, base: str) -> None:
    console.print(
        "\n[bold]Patient/$everything[/bold]: José's records on both sides, as far as his "
        "Consent (and the break-the-glass grant, while it lasts) lets Dr. Chávez see them.",
        highlight=False,
    )
    calls = [
        (
            "Everything about José, as El Paso's clinician: Juárez's visit and El Paso's record",
            f'curl -s -H "Authorization: Bearer $CLINICIAN" '
            f'"{base}/fhir/Patient/{HGCJ.patient["id"]}/\\$everything"',
        ),
        (
            "Only what happened from August 2026, conditions and visits, five a page",
            f'curl -s -H "Authorization: Bearer $CLINICIAN" '
            f'"{base}/fhir/Patient/{HGCJ.patient["id"]}/\\$everything'
            '?start=2026-08-01&_type=Condition,Encounter&_count=5"',
        ),
    ]
    for title, call in calls:
        console.print(f"# {title}\n{call}", soft_wrap=True, highlight=False)


def _load(session: Session) -> dict[str, str]:
    secrets: dict[str, str] = {}
    officers: dict[str, UserAccount] = {}
    for system in SYSTEMS:
        registered, secret = auth.add_system(
            session, code=system.code, name=system.name, country=system.country, jwks=None
        )
        exchange.register_hospital_organization(
            session, code=system.code, name=system.name, country=system.country
        )
        secrets[registered.client_id] = secret
        doubtful = [pair[SYSTEMS.index(system)] for pair in DOUBTFUL]
        extra = EXTRA[system.code]
        if system is UMCEP:
            _register_part2_program(session)
        for resource in (system.clinician, system.patient, *system.records, *doubtful, *extra):
            store.put(
                session, owner=system.code, owner_country=system.country, resource=dict(resource)
            )
        for role in PEOPLE_ROLES:
            account = auth.add_user(
                session,
                email=email(role, system.code),
                password=DEMO_PASSWORD,
                role=role,
                org_code=system.code,
                subject=_subject(role, system),
            )
            if role is Role.CONSENT_OFFICER:
                officers[system.code] = account
    _juarez_visit(session)
    _register_identifier_systems(session)
    _record_consents(session, officers)
    _cross_border_reads(session)
    _link_jose(session, officers[HGCJ.code])
    _break_glass_episode(session, officers[HGCJ.code])
    settings = get_settings()
    auth.add_app(
        session,
        name="Puente API reference",
        redirect_uris=[f"{settings.base_url.rstrip('/')}/docs/oauth2-redirect"],
        client_id=settings.docs_client_id,
    )
    return secrets


# The identifier systems each hospital's Patients carry (demo/generator.py), registered
# as `puente system add --identifier-system` would: IHE PIXm's recognized domains.
DEMO_IDENTIFIER_SYSTEMS = {
    "hgcj": ("urn:puente:hgcj:expediente", CURP_SYSTEM),
    "umcep": ("urn:puente:umcep:mrn", SSN_SYSTEM),
}


def _register_identifier_systems(session: Session) -> None:
    for code, uris in DEMO_IDENTIFIER_SYSTEMS.items():
        auth.add_identifier_systems(session, code=code, uris=uris)


def _import_synthetic(session: Session, console: Console, patients: int) -> None:
    """The generated patients and their records, through the import path hospitals use."""
    scenario = generate(patients_per_hospital=patients)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        for code, records in scenario.records.items():
            system = auth.find_system(session, code)
            assert system is not None
            caller = auth.system_caller(system)
            lines = [bulk.SourceLine("demo", n, json.dumps(r)) for n, r in enumerate(records, 1)]
            task = progress.add_task(f"importing {code}", total=len(lines))
            report = bulk.ImportReport()
            for line in bulk.in_reference_order_lines(lines):
                bulk.import_line(session, caller, line, report)
                progress.advance(task)
            if report.errors:
                raise RuntimeError(f"the generated {code} data has {len(report.errors)} bad lines")
    console.print(
        f"Imported {scenario.count()} synthetic resources: {patients} patients a "
        f"hospital, {len(scenario.shared)} of them registered on both sides."
    )


def _tokens(session: Session) -> dict[str, str]:
    def mint(role: Role, org: str, subject: str | None = None) -> str:
        return auth.token_for(
            session, role=role, org_code=org, subject=subject, ttl=DEMO_TOKEN_TTL
        ).access_token

    return {
        "HGCJ": mint(Role.SYSTEM, "hgcj"),
        "UMCEP": mint(Role.SYSTEM, "umcep"),
        "OFFICER": mint(Role.CONSENT_OFFICER, "hgcj"),
        "ADMIN": mint(Role.ADMIN, "umcep"),
        "CLINICIAN": mint(Role.CLINICIAN, "umcep", f"Practitioner/{UMCEP.clinician['id']}"),
        "MX_CLINICIAN": mint(Role.CLINICIAN, "hgcj", f"Practitioner/{HGCJ.clinician['id']}"),
        "PATIENT": mint(Role.PATIENT, "hgcj", f"Patient/{HGCJ.patient['id']}"),
    }


def _print_mpi(console: Console, counts: dict[str, int], base: str) -> None:
    console.print(
        f"\n[bold]Patient matching[/bold]: {counts.get('linked', 0)} pairs of records linked "
        f"automatically, {counts.get('review', 0)} waiting for a consent officer's review "
        f"({counts.get('possible', 0)} possible matches kept for $match).",
        highlight=False,
    )
    calls = [
        (
            "The review queue, as HGCJ's consent officer (the data steward), best first",
            f'curl -s -H "Authorization: Bearer $OFFICER" "{base}/mpi/reviews?_count=5"',
        ),
        (
            "Accept (or reject) a pair from the queue by its id",
            f'curl -s -X POST -H "Authorization: Bearer $OFFICER" {base}/mpi/reviews/ID/accept',
        ),
        (
            "Patient/$match: HGCJ's records that may be this person",
            f'curl -s -X POST -H "Authorization: Bearer $HGCJ" '
            f'-H "Content-Type: application/fhir+json" {base}/fhir/Patient/\\$match -d '
            """'{"resourceType":"Parameters","parameter":[{"name":"resource","resource":"""
            """{"resourceType":"Patient","name":[{"family":"Ramirez","given":["Jose"]}],"""
            """"gender":"male","birthDate":"1985-04-12"}}]}'""",
        ),
    ]
    for title, call in calls:
        console.print(f"# {title}\n{call}", soft_wrap=True, highlight=False)
    _print_pix(console, base)


def _print_pix(console: Console, base: str) -> None:
    console.print(
        "# IHE PIXm: the identifiers of this person in the registered identifier systems "
        "(an unregistered targetSystem is 403, an unregistered source system 400)\n"
        f'curl -s -H "Authorization: Bearer $HGCJ" '
        f'"{base}/fhir/Patient/\\$ihe-pix?sourceIdentifier={CURP_SYSTEM}|RAAL850412HCHMNS01'
        f'&targetSystem={SSN_SYSTEM}"',
        soft_wrap=True,
        highlight=False,
    )


def _print_exchange(console: Console, base: str) -> None:
    console.print("\n[bold]Across the border[/bold] (the disclosure gate):", highlight=False)
    jose, ana = HGCJ.patient["id"], ANA["id"]
    calls = [
        (
            "José's Juárez chart, as El Paso's clinician: his Consent lets the diabetes and its "
            "lab cross; the anxiety diagnosis (PSY) is not shown",
            f'curl -s -H "Authorization: Bearer $CLINICIAN" '
            f'"{base}/fhir/Patient?_id={jose}&_revinclude=Condition:patient'
            f'&_revinclude=Observation:patient"',
        ),
        (
            "Ana has given no Consent: her Juárez record is a 404, exactly as if it did not exist",
            f'curl -s -H "Authorization: Bearer $CLINICIAN" {base}/fhir/Patient/{ana}',
        ),
        (
            "Her conditions: none shown, and one outcome entry (suppressed, BTG) saying records "
            "are withheld that breaking the glass would open",
            f'curl -s -H "Authorization: Bearer $CLINICIAN" "{base}/fhir/Condition?patient={ana}"',
        ),
        (
            "A record of El Paso's Part 2 program, as Juárez's clinician: Joe's Consent names "
            "HGCJ, and the record carries the 42 CFR 2.32 notice and the consent's summary",
            f'curl -s -H "Authorization: Bearer $MX_CLINICIAN" -H "Accept-Language: es" '
            f"{base}/fhir/Condition/umcep-demo-condition-oud",
        ),
    ]
    for title, call in calls:
        console.print(f"# {title}\n{call}", soft_wrap=True, highlight=False)


def _print_btg(console: Console, counts: dict[str, int], base: str) -> None:
    console.print(
        f"\n[bold]Break-the-glass[/bold]: {counts.get('open', 0)} emergency access waiting "
        f"for a consent officer's review ({counts.get('closed', 0)} closed). The patient's "
        f"notice is in {get_settings().mail_dir}/.",
        highlight=False,
    )
    calls = [
        (
            "The grants to review, as HGCJ's consent officer (its records were opened)",
            f'curl -s -H "Authorization: Bearer $OFFICER" {base}/btg/reviews',
        ),
        (
            "Comment on a grant, then close its review",
            f'curl -s -X POST -H "Authorization: Bearer $OFFICER" '
            f'-H "Content-Type: application/json" {base}/btg/reviews/ID/comments '
            """-d '{"text":"Checked with the ER: justified."}'""",
        ),
        (
            "Break the glass, as El Paso's clinician, for El Paso's record of Ana: then her "
            "Juárez records open to you, each with the break-the-glass notice",
            f'curl -s -X POST -H "Authorization: Bearer $CLINICIAN" '
            f'-H "Content-Type: application/fhir+json" '
            f"{base}/fhir/Patient/{ANA_EL_PASO['id']}/\\$break-the-glass -d "
            """'{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"""
            """"Unconscious in the ER, no history available"},"""
            """{"name":"minutes","valueInteger":30}]}'""",
        ),
    ]
    for title, call in calls:
        console.print(f"# {title}\n{call}", soft_wrap=True, highlight=False)


def _print_accounting(console: Console, base: str) -> None:
    url = f"{base}/fhir/Patient/{HGCJ.patient['id']}/\\$disclosures"
    console.print(
        "\n[bold]Accounting of disclosures[/bold]: José ($PATIENT) sees who at El Paso saw "
        "his records, when and why, in his language; he can download it as CSV.",
        highlight=False,
    )
    calls = [
        (
            "José's accounting, in Spanish (AuditEvents with a narrative, newest first)",
            f'curl -s -H "Authorization: Bearer $PATIENT" -H "Accept-Language: es-MX" {url}',
        ),
        (
            "The same as a CSV file (saved under the name the server gives), this month on",
            f'curl -s -OJ -H "Authorization: Bearer $PATIENT" -H "Accept: text/csv" '
            f'"{url}?start={utcnow():%Y-%m}"',
        ),
        (
            "As HGCJ's consent officer (José asks at the privacy office)",
            f'curl -s -H "Authorization: Bearer $OFFICER" {url}',
        ),
    ]
    for title, call in calls:
        console.print(f"# {title}\n{call}", soft_wrap=True, highlight=False)


def _print(
    console: Console, secrets: dict[str, str], tokens: dict[str, str], loaded: bool, seconds: float
) -> None:
    settings = get_settings()
    base = settings.base_url.rstrip("/")
    state = f"loaded in {seconds:.1f} s" if loaded else "already loaded: skipped"
    console.rule("[bold]Puente demo (development mode)")
    console.print(f"Scenario {state}. Database: {settings.database_url}")
    systems = Table(title="Hospital systems")
    for column in ("system", "country", "name", "client id"):
        systems.add_column(column)
    systems.add_column("client secret", overflow="fold", min_width=43)
    for system in SYSTEMS:
        client_id = auth.client_id_for(system.code)
        systems.add_row(
            system.code,
            system.country,
            system.name,
            client_id,
            secrets.get(client_id, "(shown at first load only)"),
        )
    console.print(systems)
    people = Table("account", "role", "fhirUser", title=f"People (password: {DEMO_PASSWORD})")
    for system in SYSTEMS:
        for role in PEOPLE_ROLES:
            people.add_row(email(role, system.code), role.value, _subject(role, system) or "")
    console.print(people)
    console.print(
        f"\n[bold]Tokens[/bold] (valid {DEMO_TOKEN_TTL // 3600} h; paste into your shell):"
    )
    for name, value in tokens.items():
        console.print(f"export {name}={value}", soft_wrap=True, highlight=False)
    console.print("\n[bold]Try these[/bold]:", highlight=False)
    calls = [
        (
            "The Organizations, as Hospital General de Ciudad Juárez's system",
            f'curl -s -H "Authorization: Bearer $HGCJ" {base}/fhir/Organization',
        ),
        ("No token: 401, in Spanish", f'curl -s -H "Accept-Language: es" {base}/fhir/Patient'),
        (
            "The audit trail, as HGCJ's consent officer",
            f'curl -s -H "Authorization: Bearer $OFFICER" "{base}/fhir/AuditEvent?_count=5"',
        ),
        (
            "HGCJ's ER visits, their patients included (accents folded: name=jose finds José)",
            f'curl -s -H "Authorization: Bearer $HGCJ" '
            f'"{base}/fhir/Encounter?class=EMER&_include=Encounter:subject&_count=5"',
        ),
        (
            "A psychiatric diagnosis carries the PSY sensitivity label in meta.security",
            f'curl -s -H "Authorization: Bearer $UMCEP" '
            f"{base}/fhir/Condition/umcep-demo-condition-psy",
        ),
        (
            "José's Consent: treatment by the United States' hospitals, as HGCJ's officer",
            f'curl -s -H "Authorization: Bearer $OFFICER" {base}/fhir/Consent/hgcj-demo-consent',
        ),
    ]
    for title, call in calls:
        console.print(f"# {title}\n{call}", soft_wrap=True, highlight=False)
    with unit_of_work() as session:
        counts = mpi_review.counts(session)
        grants = btg.counts(session)
    _print_exchange(console, base)
    _print_mpi(console, counts, base)
    _print_btg(console, grants, base)
    _print_accounting(console, base)
    _print_everything(console, base)
    console.print(
        f"\nSign in as a person at {base}/docs (Authorize, PKCE) with any account above; "
        f"the API reference is at {base}/docs. `puente audit verify` checks the audit chain.\n",
        highlight=False,
    )


# Bulk export (issue 6): El Paso's ER follow-up list holds José's El Paso record; its
# Group-level `$export` by Dr. Chávez holds his compartment and, through the MPI link and
# the disclosure gate, the Juárez records his Consent (or the open break-the-glass grant)
# lets El Paso see.
EXPORT_GROUP = {
    "resourceType": "Group",
    "id": "umcep-demo-er-followup",
    "type": "person",
    "actual": True,
    "name": "ER follow-up",
    "member": [{"entity": {"reference": f"Patient/{UMCEP.patient['id']}"}}],
}


def _demo_export(console: Console) -> None:
    """Run a Group-level export as El Paso's clinician and print its files."""
    base = get_settings().fhir_base_url
    with unit_of_work() as session:
        store.put(session, owner=UMCEP.code, owner_country=UMCEP.country, resource=EXPORT_GROUP)
        job = export_jobs.kick_off(
            session,
            _clinician(UMCEP.clinician),
            level=export_jobs.GROUP,
            request=export_jobs.ExportRequest(),
            request_url=f"{base}/Group/{EXPORT_GROUP['id']}/$export",
            locale=get_settings().default_locale,
            group_id=str(EXPORT_GROUP["id"]),
        )
        job_id = job.id
    # With no broker the export ran when that transaction committed; with one, a worker
    # is writing it: its status URL says when it is done.
    with unit_of_work() as session:
        files = export_jobs.files_of(session, job_id=job_id)
    counts = ", ".join(f"{f.name} ({f.count})" for f in files) or "still running"
    console.print(
        f"\n[bold]Bulk export[/bold]: El Paso's clinician exported the group "
        f"{EXPORT_GROUP['id']} through the disclosure gate: {counts}.",
        highlight=False,
    )
    calls = [
        (
            "Kick off a Patient-level export as El Paso's clinician (Prefer: respond-async)",
            f'curl -si -H "Authorization: Bearer $CLINICIAN" -H "Prefer: respond-async" '
            f'"{base}/Patient/\\$export?_type=Patient,Condition"',
        ),
        (
            "Poll the Content-Location it answers (202 while running, then the manifest)",
            f'curl -s -H "Authorization: Bearer $CLINICIAN" {base}/\\$export-status/{job_id}',
        ),
        (
            "Download a file of the manifest (NDJSON; every download is audited)",
            f'curl -s -H "Authorization: Bearer $CLINICIAN" '
            f"{base}/\\$export-file/{job_id}/Patient-1.ndjson",
        ),
    ]
    for title, call in calls:
        console.print(f"# {title}\n{call}", soft_wrap=True, highlight=False)


def run(console: Console | None = None, *, synthetic_patients: int = SYNTHETIC_PATIENTS) -> bool:
    """Load the scenario unless it is there; print accounts, tokens and calls.

    Returns True when this run loaded it.
    """
    console = console or Console()
    started = time.perf_counter()
    # One transaction: an interrupted load leaves nothing, and the next run loads again.
    with unit_of_work() as session:
        loaded = auth.find_system(session, HGCJ.code) is None
        secrets = _load(session) if loaded else {}
        if loaded:
            _import_synthetic(session, console, synthetic_patients)
    with unit_of_work() as session:
        tokens = _tokens(session)
    _print(console, secrets, tokens, loaded, time.perf_counter() - started)
    if loaded:
        _demo_export(console)
    return loaded
