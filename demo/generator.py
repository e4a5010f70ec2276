"""Synthetic patients of Hospital General de Ciudad Juárez (hgcj) and University Medical
Center of El Paso (umcep): the demo's data, and the benchmarks' at larger sizes.

Deterministic for a seed. Mexican records carry two surnames (with the R4
fathers-family/mothers-family extensions), a CURP, WHO ICD-10, Cartilla and Compendio
codes. US records follow El Paso registration habits: accents dropped, one or hyphenated
surnames, nicknames, month-first birth dates typed wrong, ICD-10-CM, CVX and RxNorm. A
share of people are registered on both sides: the matcher's work.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from demo import codes
from exchange.curp import derive as derive_curp

DATA = Path(__file__).parent / "data"
ANCHOR = dt.date(2026, 11, 1)  # the scenario's "today": fixed, so output is reproducible
FATHERS = "http://hl7.org/fhir/StructureDefinition/humanname-fathers-family"
MOTHERS = "http://hl7.org/fhir/StructureDefinition/humanname-mothers-family"
CURP_SYSTEM = "https://www.gob.mx/curp"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
ENCOUNTER_CLASS = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
JUAREZ_COLONIAS = (
    "Centro",
    "Bellavista",
    "Margaritas",
    "Infonavit Casas Grandes",
    "Riberas del Bravo",
    "Partido Romero",
    "Chamizal",
    "Salvárcar",
)
EL_PASO_STREETS = (
    "Alameda Ave",
    "Montana Ave",
    "Dyer St",
    "Zaragoza Rd",
    "Mesa St",
    "Yarbrough Dr",
    "Lee Trevino Dr",
    "Pellicano Dr",
)
ENGLISH_GIVEN = ("James", "Michael", "Jennifer", "Ashley", "David", "Sarah", "Robert", "Emily")
ENGLISH_FAMILY = ("Smith", "Johnson", "Williams", "Brown", "Miller", "Davis", "Wilson")


@dataclass(frozen=True)
class Name:
    text: str  # as Census writes it: upper case, no accents
    weight: int
    male_share: float = 0.5


@lru_cache(maxsize=1)
def _surnames() -> tuple[Name, ...]:
    with (DATA / "census2010_hispanic_surnames.csv").open(encoding="utf-8") as fh:
        return tuple(Name(r["surname"], int(r["count"])) for r in csv.DictReader(fh))


@lru_cache(maxsize=1)
def _first_names() -> tuple[Name, ...]:
    with (DATA / "census2020_hispanic_first_names.csv").open(encoding="utf-8") as fh:
        return tuple(
            Name(r["first_name"], int(r["count"]), float(r["pct_male"]) / 100)
            for r in csv.DictReader(fh)
            if float(r["pct_hispanic"]) >= 60
        )


def _spanish(word: str) -> str:
    """`HERNANDEZ` -> `Hernández` for the words whose accents Mexican registries write."""
    return codes.ACCENTED.get(word, word.capitalize())


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass
class Person:
    """One human being, before any hospital writes them down."""

    given: list[str]  # Spanish forms: ["José", "Luis"]
    paternal: str
    maternal: str | None
    sex: str  # male | female
    birth_date: dt.date
    curp: str | None
    ssn: str | None
    mx_phone: str
    us_phone: str | None
    conditions: list[codes.Diagnosis] = field(default_factory=list)


class Generator:
    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
        # Cumulative weights: the same draws as `weights=` (integer sums are exact), without
        # re-adding thousands of weights on every draw (the benchmarks draw millions).
        self._surname_weights = list(accumulate(n.weight for n in _surnames()))
        self._first_weights = list(accumulate(n.weight for n in _first_names()))

    def _surname(self) -> str:
        return _spanish(self.rng.choices(_surnames(), cum_weights=self._surname_weights)[0].text)

    def surname(self) -> str:
        """One surname, drawn by its Census frequency, with the accents Mexico writes."""
        return self._surname()

    def given_names(self, sex: str) -> list[str]:
        """Given names for `sex` (male | female), a third of them compound (José Luis)."""
        return self._given(sex)

    def _given(self, sex: str) -> list[str]:
        names = _first_names()
        while True:
            pick = self.rng.choices(names, cum_weights=self._first_weights)[0]
            fits = pick.male_share >= 0.8 if sex == "male" else pick.male_share <= 0.2
            if fits:
                break
        given = [_spanish(pick.text)]
        if self.rng.random() < 0.35:  # compound names: José Luis, María Guadalupe
            lead = "José" if sex == "male" else "María"
            given = (
                [lead, given[0]]
                if given[0] != lead
                else [lead, "Luis" if sex == "male" else "Guadalupe"]
            )
        return given

    def person(self, *, mexican: bool) -> Person:
        rng = self.rng
        sex = rng.choice(("male", "female"))
        given = self._given(sex)
        paternal, maternal = self._surname(), self._surname()
        age_days = int(rng.triangular(0, 90, 38) * 365.25)
        birth = ANCHOR - dt.timedelta(days=age_days)
        curp = None
        if mexican:
            curp = derive_curp(
                paternal=paternal,
                maternal=maternal,
                given=" ".join(given),
                birth_date=birth,
                sex="H" if sex == "male" else "M",
                state=rng.choice(("CH", "CH", "CH", "DG", "ZS")),
            )
        ssn = (
            None
            if mexican and rng.random() < 0.7
            else (
                f"{rng.randint(100, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
            )
        )
        chronic = [d for d in codes.DIAGNOSES if d.chronic]
        conditions = rng.sample(chronic, k=rng.choice((0, 0, 1, 1, 2)))
        return Person(
            given=given,
            paternal=paternal,
            maternal=maternal,
            sex=sex,
            birth_date=birth,
            curp=curp,
            ssn=ssn,
            mx_phone=f"+52 656 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            us_phone=f"+1 915 {rng.randint(200, 999)} {rng.randint(1000, 9999)}"
            if not mexican or rng.random() < 0.5
            else None,
            conditions=conditions,
        )


def _mx_patient(person: Person, pid: str, index: int) -> dict[str, Any]:
    family = f"{person.paternal} {person.maternal}" if person.maternal else person.paternal
    family_ext = [{"url": FATHERS, "valueString": person.paternal}]
    if person.maternal:
        family_ext.append({"url": MOTHERS, "valueString": person.maternal})
    identifiers = [{"type": MR, "system": "urn:puente:hgcj:expediente", "value": f"HG{index:07d}"}]
    if person.curp:
        identifiers.append({"system": CURP_SYSTEM, "value": person.curp})
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers,
        "active": True,
        "name": [
            {
                "use": "official",
                "family": family,
                "_family": {"extension": family_ext},
                "given": person.given,
            }
        ],
        "telecom": [{"system": "phone", "value": person.mx_phone, "use": "mobile"}],
        "gender": person.sex,
        "birthDate": person.birth_date.isoformat(),
        "address": [
            {
                "city": "Ciudad Juárez",
                "state": "CHH",
                "postalCode": f"32{index % 700:03d}",
                "district": JUAREZ_COLONIAS[index % len(JUAREZ_COLONIAS)],
                "country": "MX",
            }
        ],
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]},
                "preferred": True,
            }
        ],
    }


def _us_name(person: Person, rng: random.Random) -> dict[str, Any]:
    """How an El Paso registration desk writes a Mexican name (DOMAIN.md)."""
    paternal, maternal = _plain(person.paternal), _plain(person.maternal or "")
    given = [_plain(g) for g in person.given]
    style = rng.random()
    if style < 0.35:
        family = paternal
    elif style < 0.55 and maternal:
        family = f"{paternal}-{maternal}"
    elif style < 0.70 and maternal:
        return {"use": "official", "family": maternal, "given": [given[-1], paternal]}
    else:
        family = f"{paternal} {maternal}".strip()
    if given[0] in ("Jose", "Maria") and len(given) > 1 and rng.random() < 0.5:
        given = given[1:]
    nick = codes.NICKNAMES.get(given[0].upper())
    if nick and rng.random() < 0.4:
        given = [rng.choice(nick)]
    return {"use": "official", "family": family, "given": given}


def _us_birth_date(person: Person, rng: random.Random) -> str:
    day = person.birth_date
    if day.day <= 12 and day.day != day.month and rng.random() < 0.12:
        return day.replace(month=day.day, day=day.month).isoformat()  # typed month-first
    return day.isoformat()


def _us_patient(person: Person, pid: str, index: int, rng: random.Random) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = [
        {"type": MR, "system": "urn:puente:umcep:mrn", "value": f"UMC{index:08d}"}
    ]
    if person.ssn:
        identifiers.append({"system": SSN_SYSTEM, "value": person.ssn})
    phone = person.us_phone or person.mx_phone
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers,
        "active": True,
        "name": [_us_name(person, rng)],
        "telecom": [{"system": "phone", "value": phone, "use": "mobile"}],
        "gender": person.sex,
        "birthDate": _us_birth_date(person, rng),
        "address": [
            {
                "line": [f"{rng.randint(100, 9999)} {rng.choice(EL_PASO_STREETS)}"],
                "city": "El Paso",
                "state": "TX",
                "postalCode": f"799{rng.randint(0, 38):02d}",
                "country": "US",
            }
        ],
    }


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


ZONES = {"hgcj": ZoneInfo("America/Ciudad_Juarez"), "umcep": ZoneInfo("America/Denver")}


def _moment(day: dt.date, system: str, rng: random.Random) -> dt.datetime:
    """A wall-clock time at the hospital, with the offset its zone had that day. A time that
    did not exist (the spring-forward gap: 02:30 on a March Sunday in El Paso) becomes the
    instant it names, shown as the clocks showed it (03:30)."""
    zone = ZONES[system]
    wall = dt.datetime(
        day.year, day.month, day.day, rng.randint(0, 23), rng.randint(0, 59), tzinfo=zone
    )
    return wall.astimezone(dt.UTC).astimezone(zone)


def _instant(day: dt.date, system: str, rng: random.Random) -> str:
    return _moment(day, system, rng).isoformat()


def _clinical(
    person: Person, pid: str, system: str, rng: random.Random
) -> Iterator[dict[str, Any]]:
    mexican = system == "hgcj"
    subject = {"reference": f"Patient/{pid}"}
    diagnosis_system = codes.ICD10_WHO if mexican else codes.ICD10_CM
    for n, diagnosis in enumerate(person.conditions):
        code = diagnosis.who if mexican else diagnosis.cm
        yield {
            "resourceType": "Condition",
            "id": f"{pid}-c{n}",
            "subject": subject,
            "clinicalStatus": _coding(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
            ),
            "category": [
                _coding(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "problem-list-item",
                    "Problem List Item",
                )
            ],
            "code": _coding(diagnosis_system, code, diagnosis.es if mexican else diagnosis.en),
            "recordedDate": (ANCHOR - dt.timedelta(days=rng.randint(60, 2000))).isoformat(),
        }
        medicine = next((m for m in codes.MEDICINES if m.for_diagnosis == diagnosis.who), None)
        if medicine:
            yield {
                "resourceType": "MedicationRequest",
                "id": f"{pid}-m{n}",
                "status": "active",
                "intent": "order",
                "subject": subject,
                "medicationCodeableConcept": _coding(
                    codes.COMPENDIO, medicine.compendio, medicine.es
                )
                if mexican
                else _coding(codes.RXNORM, medicine.rxnorm, medicine.en),
                "authoredOn": (ANCHOR - dt.timedelta(days=rng.randint(1, 700))).isoformat(),
            }
    for n in range(rng.choice((0, 1, 1, 2, 3))):
        day = ANCHOR - dt.timedelta(days=rng.randint(1, 730))
        er = rng.random() < 0.45
        diagnosis = rng.choice([d for d in codes.DIAGNOSES if not d.chronic])
        klass = ("EMER", "emergency") if er else ("AMB", "ambulatory")
        start = _moment(day, system, rng)
        # In UTC: aware arithmetic in Python is wall-clock arithmetic, which puts an end
        # before its start across a daylight-saving change.
        end = (start.astimezone(dt.UTC) + dt.timedelta(minutes=rng.randint(40, 360))).astimezone(
            start.tzinfo
        )
        yield {
            "resourceType": "Encounter",
            "id": f"{pid}-e{n}",
            "status": "finished",
            "class": {"system": ENCOUNTER_CLASS, "code": klass[0], "display": klass[1]},
            "subject": subject,
            "period": {"start": start.isoformat(), "end": end.isoformat()},
            "reasonCode": [
                _coding(
                    diagnosis_system,
                    diagnosis.who if mexican else diagnosis.cm,
                    diagnosis.es if mexican else diagnosis.en,
                )
            ],
            "serviceProvider": {"reference": f"Organization/{system}"},
        }
    for n in range(rng.choice((0, 1, 1, 2))):
        lab = rng.choice(codes.LABS)
        value = round(rng.uniform(lab.low, lab.high), lab.decimals)
        yield {
            "resourceType": "Observation",
            "id": f"{pid}-o{n}",
            "status": "final",
            "category": [
                _coding(
                    "http://terminology.hl7.org/CodeSystem/observation-category",
                    "laboratory" if lab.unit not in ("kg", "mm[Hg]") else "vital-signs",
                    "Laboratory" if lab.unit not in ("kg", "mm[Hg]") else "Vital Signs",
                )
            ],
            "code": _coding(codes.LOINC, lab.loinc, lab.display),
            "subject": subject,
            "effectiveDateTime": _instant(
                ANCHOR - dt.timedelta(days=rng.randint(1, 700)), system, rng
            ),
            "valueQuantity": {
                "value": value,
                "unit": lab.unit,
                "system": codes.UCUM,
                "code": lab.unit,
            },
        }
    if rng.random() < 0.4:
        vaccine = rng.choice(codes.VACCINES)
        yield {
            "resourceType": "Immunization",
            "id": f"{pid}-i0",
            "status": "completed",
            "vaccineCode": _coding(codes.CARTILLA, vaccine.cartilla, vaccine.es)
            if mexican
            else _coding(codes.CVX, vaccine.cvx, vaccine.en),
            "patient": subject,
            "occurrenceDateTime": _instant(
                ANCHOR - dt.timedelta(days=rng.randint(1, 900)), system, rng
            ),
        }


@dataclass
class Scenario:
    """Resources per hospital system, in reference order (patients before their records)."""

    records: dict[str, list[dict[str, Any]]]
    shared: list[tuple[str, str]]  # (hgcj patient id, umcep patient id): the same person

    def count(self) -> int:
        return sum(len(v) for v in self.records.values())


def generate(
    *, patients_per_hospital: int = 1000, shared_share: float = 0.25, seed: int = 2026
) -> Scenario:
    gen = Generator(seed)
    rng = gen.rng
    mx_patients: list[dict[str, Any]] = []
    us_patients: list[dict[str, Any]] = []
    mx_clinical: list[dict[str, Any]] = []
    us_clinical: list[dict[str, Any]] = []
    shared: list[tuple[str, str]] = []
    us_index = 0
    for index in range(patients_per_hospital):
        person = gen.person(mexican=True)
        pid = f"hgcj-p{index:06d}"
        mx_patients.append(_mx_patient(person, pid, index))
        mx_clinical.extend(_clinical(person, pid, "hgcj", rng))
        if rng.random() < shared_share and us_index < patients_per_hospital:
            us_pid = f"umcep-p{us_index:06d}"
            us_patients.append(_us_patient(person, us_pid, us_index, rng))
            us_clinical.extend(_clinical(person, us_pid, "umcep", rng))
            shared.append((pid, us_pid))
            us_index += 1
    while us_index < patients_per_hospital:
        person = gen.person(mexican=False)
        if rng.random() < 0.15:
            person.given = [rng.choice(ENGLISH_GIVEN)]
            person.paternal, person.maternal = rng.choice(ENGLISH_FAMILY), None
        us_pid = f"umcep-p{us_index:06d}"
        us_patients.append(_us_patient(person, us_pid, us_index, rng))
        us_clinical.extend(_clinical(person, us_pid, "umcep", rng))
        us_index += 1
    return Scenario({"hgcj": mx_patients + mx_clinical, "umcep": us_patients + us_clinical}, shared)


def write_ndjson(scenario: Scenario, folder: Path) -> dict[str, Path]:
    """One folder per hospital system, one `<Type>.ndjson` per resource type; returns the
    folder of each system."""
    import json

    folders: dict[str, Path] = {}
    for system, records in scenario.records.items():
        target = folder / system
        target.mkdir(parents=True, exist_ok=True)
        by_type: dict[str, list[str]] = {}
        for resource in records:
            by_type.setdefault(resource["resourceType"], []).append(
                json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
            )
        for resource_type, lines in by_type.items():
            (target / f"{resource_type}.ndjson").write_text("\n".join(lines) + "\n", "utf-8")
        folders[system] = target
    return folders
