"""Code lists for the synthetic scenario: what each side's records carry.

Mexico codes diagnoses in WHO ICD-10 (CIE-10), the US in ICD-10-CM (more specific);
labs are LOINC on both sides; US vaccines are CVX, Mexican ones the national scheme's
names; US medicines RxNorm, Mexican ones the Compendio Nacional de Insumos keys
(DOMAIN.md, "Codes on each side").
"""

from __future__ import annotations

from dataclasses import dataclass

ICD10_WHO = "http://hl7.org/fhir/sid/icd-10"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# Puente-defined: the Compendio Nacional de Insumos para la Salud and the Cartilla
# Nacional de Salud vaccine names publish no HL7 URI.
COMPENDIO = "https://www.gob.mx/csg/compendio-nacional-de-insumos"
CARTILLA = "https://www.gob.mx/salud/cartilla-nacional-de-salud"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True)
class Diagnosis:
    who: str  # WHO ICD-10
    cm: str  # ICD-10-CM
    es: str
    en: str
    chronic: bool


# Common reasons for ER visits and chronic conditions in the region; the NYU ED algorithm
# classes most of the acute ones as primary-care treatable or non-emergent.
DIAGNOSES = (
    Diagnosis(
        "E11.9",
        "E11.9",
        "Diabetes mellitus tipo 2 sin complicaciones",
        "Type 2 diabetes mellitus without complications",
        True,
    ),
    Diagnosis(
        "I10", "I10", "Hipertensión esencial (primaria)", "Essential (primary) hypertension", True
    ),
    Diagnosis(
        "J45.9", "J45.909", "Asma, no especificada", "Unspecified asthma, uncomplicated", True
    ),
    Diagnosis("E66.9", "E66.9", "Obesidad, no especificada", "Obesity, unspecified", True),
    Diagnosis(
        "J06.9",
        "J06.9",
        "Infección aguda de las vías respiratorias superiores",
        "Acute upper respiratory infection, unspecified",
        False,
    ),
    Diagnosis(
        "N39.0",
        "N39.0",
        "Infección de vías urinarias, sitio no especificado",
        "Urinary tract infection, site not specified",
        False,
    ),
    Diagnosis("M54.5", "M54.50", "Lumbago no especificado", "Low back pain, unspecified", False),
    Diagnosis("R10.4", "R10.9", "Dolor abdominal", "Unspecified abdominal pain", False),
    Diagnosis(
        "J02.9",
        "J02.9",
        "Faringitis aguda, no especificada",
        "Acute pharyngitis, unspecified",
        False,
    ),
    Diagnosis("R51", "R51.9", "Cefalea", "Headache, unspecified", False),
    Diagnosis(
        "S93.4",
        "S93.401A",
        "Esguince del tobillo",
        "Sprain of unspecified ligament of ankle, initial encounter",
        False,
    ),
    Diagnosis(
        "K29.7",
        "K29.70",
        "Gastritis, no especificada",
        "Gastritis, unspecified, without bleeding",
        False,
    ),
)


@dataclass(frozen=True)
class Lab:
    loinc: str
    display: str
    unit: str
    low: float
    high: float
    decimals: int


LABS = (
    Lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.0, 11.5, 1),
    Lab("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 70, 260, 0),
    Lab("29463-7", "Body weight", "kg", 48, 125, 1),
    Lab("8480-6", "Systolic blood pressure", "mm[Hg]", 100, 175, 0),
    Lab("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140, 290, 0),
)


@dataclass(frozen=True)
class Vaccine:
    cvx: str
    en: str
    cartilla: str
    es: str


VACCINES = (
    Vaccine("141", "Influenza, seasonal, injectable", "INFLUENZA", "Vacuna contra influenza"),
    Vaccine("115", "Tdap", "TDPA", "Vacuna Tdpa (tétanos, difteria, tos ferina acelular)"),
    Vaccine(
        "33",
        "Pneumococcal polysaccharide PPV23",
        "NEUMO23",
        "Vacuna antineumocócica polisacárida 23-valente",
    ),
    Vaccine(
        "213",
        "SARS-COV-2 (COVID-19) vaccine, unspecified",
        "COVID19",
        "Vacuna contra SARS-CoV-2 (COVID-19)",
    ),
)


@dataclass(frozen=True)
class Medicine:
    rxnorm: str
    en: str
    compendio: str
    es: str
    for_diagnosis: str  # WHO ICD-10 it treats


MEDICINES = (
    Medicine(
        "860975",
        "metformin hydrochloride 500 MG Oral Tablet",
        "010.000.5165.00",
        "Metformina tableta 850 mg",
        "E11.9",
    ),
    Medicine(
        "314076",
        "lisinopril 10 MG Oral Tablet",
        "010.000.2501.00",
        "Enalapril tableta 10 mg",
        "I10",
    ),
    Medicine(
        "745679",
        "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
        "010.000.0429.00",
        "Salbutamol suspensión en aerosol 100 µg",
        "J45.9",
    ),
    Medicine(
        "198405",
        "ibuprofen 400 MG Oral Tablet",
        "010.000.3417.00",
        "Ibuprofeno tableta 400 mg",
        "M54.5",
    ),
    Medicine(
        "308182",
        "amoxicillin 500 MG Oral Capsule",
        "010.000.2128.00",
        "Amoxicilina cápsula 500 mg",
        "J02.9",
    ),
)

# Nicknames and English forms that US registration desks record (DOMAIN.md, "People and
# their names"); the matcher's curated table (issue 5) is the full list.
NICKNAMES = {
    "JESUS": ("Chuy", "Jesse"),
    "JOSE": ("Pepe", "Joe"),
    "FRANCISCO": ("Paco", "Pancho", "Frank"),
    "GUADALUPE": ("Lupe",),
    "IGNACIO": ("Nacho",),
    "GUILLERMO": ("Memo", "William"),
    "EDUARDO": ("Lalo", "Eddie"),
    "ROBERTO": ("Beto", "Robert"),
    "ALBERTO": ("Beto", "Albert"),
    "SALVADOR": ("Chava",),
    "ROSARIO": ("Chayo",),
    "CONCEPCION": ("Conchita",),
    "DOLORES": ("Lola",),
    "ANTONIO": ("Toño", "Tony"),
    "ALEJANDRO": ("Alex",),
    "MIGUEL": ("Mike",),
    "MANUEL": ("Manny",),
    "ENRIQUE": ("Henry", "Kike"),
}

# The Census files are upper case without accents; Mexican registries write them.
ACCENTED = {
    "GARCIA": "García",
    "RODRIGUEZ": "Rodríguez",
    "MARTINEZ": "Martínez",
    "HERNANDEZ": "Hernández",
    "LOPEZ": "López",
    "GONZALEZ": "González",
    "PEREZ": "Pérez",
    "SANCHEZ": "Sánchez",
    "RAMIREZ": "Ramírez",
    "FLORES": "Flores",
    "GOMEZ": "Gómez",
    "DIAZ": "Díaz",
    "REYES": "Reyes",
    "CRUZ": "Cruz",
    "MORALES": "Morales",
    "GUTIERREZ": "Gutiérrez",
    "ORTIZ": "Ortiz",
    "CHAVEZ": "Chávez",
    "RAMOS": "Ramos",
    "RUIZ": "Ruiz",
    "JIMENEZ": "Jiménez",
    "VAZQUEZ": "Vázquez",
    "CASTILLO": "Castillo",
    "ALVAREZ": "Álvarez",
    "FERNANDEZ": "Fernández",
    "MENDOZA": "Mendoza",
    "DOMINGUEZ": "Domínguez",
    "NUNEZ": "Núñez",
    "MUNOZ": "Muñoz",
    "PENA": "Peña",
    "IBANEZ": "Ibáñez",
    "BELTRAN": "Beltrán",
    "CHACON": "Chacón",
    "RINCON": "Rincón",
    "MARQUEZ": "Márquez",
    "SUAREZ": "Suárez",
    "JOSE": "José",
    "MARIA": "María",
    "JESUS": "Jesús",
    "RAUL": "Raúl",
    "RAMON": "Ramón",
    "ANGEL": "Ángel",
    "HECTOR": "Héctor",
    "OSCAR": "Óscar",
    "SOFIA": "Sofía",
    "LUCIA": "Lucía",
    "ANDRES": "Andrés",
    "CONCEPCION": "Concepción",
    "MONICA": "Mónica",
    "VERONICA": "Verónica",
    "ADRIAN": "Adrián",
    "JULIAN": "Julián",
    "MARTIN": "Martín",
    "AGUSTIN": "Agustín",
    "BARBARA": "Bárbara",
    "ANAHI": "Anahí",
    "NOEMI": "Noemí",
    "ROCIO": "Rocío",
}
