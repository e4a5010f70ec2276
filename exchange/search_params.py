"""Search parameters of the clinical and directory types (R4 definitions: names, types and
element paths as the specification's SearchParameter resources give them).

Choice elements (`effective[x]`, `onset[x]`, ...) are indexed through one path per concrete
element the parameter covers (`effectiveDateTime`, `effectivePeriod`, ...).
"""

from __future__ import annotations

from puente.fhir.search import ParamType, SearchParam

S, T, D, R, Q = (
    ParamType.STRING,
    ParamType.TOKEN,
    ParamType.DATE,
    ParamType.REFERENCE,
    ParamType.QUANTITY,
)
_PEOPLE = ("Practitioner", "PractitionerRole", "Patient", "Organization")


def p(
    name: str,
    kind: ParamType,
    documentation: str,
    *paths: str,
    targets: tuple[str, ...] = (),
) -> SearchParam:
    return SearchParam(name, kind, documentation, paths, targets)


def _patient(path: str = "subject") -> SearchParam:
    return p("patient", R, "Who the record is about", path, targets=("Patient",))


def _subject(*targets: str) -> SearchParam:
    return p("subject", R, "Who or what the record is about", "subject", targets=targets)


def _encounter(path: str = "encounter") -> SearchParam:
    return p("encounter", R, "The Encounter the record was made in", path, targets=("Encounter",))


def _identifier() -> SearchParam:
    return p("identifier", T, "A business identifier", "identifier")


def _status(path: str = "status") -> SearchParam:
    return p("status", T, "The status of the record", path)


def _code(*paths: str) -> SearchParam:
    return p("code", T, "A code (e.g. ICD-10, LOINC, SNOMED CT, RxNorm)", *(paths or ("code",)))


def _dates(name: str, documentation: str, element: str, *kinds: str) -> SearchParam:
    return p(name, D, documentation, *(element + kind for kind in kinds))


PRACTITIONER = (
    _identifier(),
    p("name", S, "Any part of a name (accent- and case-insensitive)", "name"),
    p("family", S, "A portion of the family name", "name.family"),
    p("given", S, "A portion of the given name", "name.given"),
    p("telecom", T, "Any kind of contact", "telecom"),
    p("phone", T, "A phone number", "telecom"),
    p("active", T, "Whether the record is active", "active"),
    p("gender", T, "Gender of the practitioner", "gender"),
    p("address-city", S, "A city in an address", "address.city"),
    p("communication", T, "A language the practitioner can use", "communication"),
)

PRACTITIONER_ROLE = (
    _identifier(),
    p("practitioner", R, "The practitioner", "practitioner", targets=("Practitioner",)),
    p("organization", R, "Where the role is held", "organization", targets=("Organization",)),
    p("location", R, "Where the role is performed", "location", targets=("Location",)),
    p(
        "service",
        R,
        "Services offered in the role",
        "healthcareService",
        targets=("HealthcareService",),
    ),
    p("specialty", T, "The practitioner's specialty", "specialty"),
    p("role", T, "The role the practitioner may perform", "code"),
    p("active", T, "Whether the role is active", "active"),
    p("telecom", T, "Any kind of contact", "telecom"),
)

LOCATION = (
    _identifier(),
    p("name", S, "A portion of the location's name or alias", "name", "alias"),
    p("address-city", S, "A city in the address", "address.city"),
    p("address-state", S, "A state in the address", "address.state"),
    p("address-postalcode", S, "A postal code in the address", "address.postalCode"),
    p("type", T, "A code for the type of location", "type"),
    p(
        "organization",
        R,
        "Who manages the location",
        "managingOrganization",
        targets=("Organization",),
    ),
    p("partof", R, "The location it is part of", "partOf", targets=("Location",)),
    _status(),
    p("operational-status", T, "Bed status (e.g. occupied)", "operationalStatus"),
)

HEALTHCARE_SERVICE = (
    _identifier(),
    p("name", S, "A portion of the service's name", "name"),
    p("organization", R, "Who provides the service", "providedBy", targets=("Organization",)),
    p("location", R, "Where the service is provided", "location", targets=("Location",)),
    p("service-type", T, "The type of service", "type"),
    p("service-category", T, "The category of service", "category"),
    p("specialty", T, "The specialties handled", "specialty"),
    p("active", T, "Whether the service is active", "active"),
)

ENCOUNTER = (
    _identifier(),
    _patient(),
    _subject("Patient"),
    p("class", T, "Classification (e.g. EMER, IMP, AMB)", "class"),
    p("date", D, "When the encounter took place", "period"),
    _status(),
    p("type", T, "The type of encounter", "type"),
    p("reason-code", T, "Why the encounter took place (coded)", "reasonCode"),
    p(
        "service-provider",
        R,
        "The organization responsible",
        "serviceProvider",
        targets=("Organization",),
    ),
    p(
        "participant",
        R,
        "Persons involved in the encounter",
        "participant.individual",
        targets=("Practitioner", "PractitionerRole"),
    ),
    p(
        "practitioner",
        R,
        "Practitioners involved in the encounter",
        "participant.individual",
        targets=("Practitioner",),
    ),
    p("location", R, "Where the encounter took place", "location.location", targets=("Location",)),
    p("length", Q, "Length of the encounter", "length"),
)

OBSERVATION = (
    _identifier(),
    _patient(),
    _subject("Patient", "Location"),
    _code(),
    p("category", T, "The classification of the observation", "category"),
    _dates("date", "When the observation applies", "effective", "DateTime", "Period", "Instant"),
    p("value-quantity", Q, "The value as a quantity", "valueQuantity"),
    p("value-concept", T, "The value as a code", "valueCodeableConcept"),
    p("value-string", S, "The value as a string", "valueString"),
    _status(),
    _encounter(),
    p("performer", R, "Who performed the observation", "performer", targets=_PEOPLE),
    p("combo-code", T, "The code or a component's code", "code", "component.code"),
    p("component-code", T, "A component's code", "component.code"),
    p("based-on", R, "What the observation fulfils", "basedOn", targets=("MedicationRequest",)),
)

CONDITION = (
    _identifier(),
    _patient(),
    _subject("Patient"),
    _code(),
    p("category", T, "The category (problem list item, encounter diagnosis)", "category"),
    p("clinical-status", T, "active | recurrence | relapse | inactive | ...", "clinicalStatus"),
    p("verification-status", T, "confirmed | provisional | ...", "verificationStatus"),
    p("severity", T, "The severity", "severity"),
    _dates("onset-date", "When the condition began", "onset", "DateTime", "Period"),
    _dates("abatement-date", "When the condition resolved", "abatement", "DateTime", "Period"),
    p("recorded-date", D, "When the condition was recorded", "recordedDate"),
    _encounter(),
    p("asserter", R, "Who asserted the condition", "asserter", targets=_PEOPLE),
)

ALLERGY_INTOLERANCE = (
    _identifier(),
    _patient("patient"),
    _code("code", "reaction.substance"),
    p("clinical-status", T, "active | inactive | resolved", "clinicalStatus"),
    p("verification-status", T, "unconfirmed | confirmed | ...", "verificationStatus"),
    p("criticality", T, "low | high | unable-to-assess", "criticality"),
    p("category", T, "food | medication | environment | biologic", "category"),
    p("type", T, "allergy | intolerance", "type"),
    p("date", D, "When the record was made", "recordedDate"),
    p("onset", D, "When the reaction began", "reaction.onset"),
    p("recorder", R, "Who recorded it", "recorder", targets=_PEOPLE),
)

MEDICATION_REQUEST = (
    _identifier(),
    _patient(),
    _subject("Patient"),
    _code("medicationCodeableConcept"),
    _status(),
    p("intent", T, "proposal | plan | order | ...", "intent"),
    p("category", T, "The type of medication usage", "category"),
    p("authoredon", D, "When the prescription was written", "authoredOn"),
    p("requester", R, "Who asked for the medication", "requester", targets=_PEOPLE),
    _encounter(),
)

MEDICATION_STATEMENT = (
    _identifier(),
    _patient(),
    _subject("Patient"),
    _code("medicationCodeableConcept"),
    _status(),
    p("category", T, "The type of medication usage", "category"),
    _dates("effective", "When the medication is or was taken", "effective", "DateTime", "Period"),
    p("context", R, "The encounter the statement was made in", "context", targets=("Encounter",)),
)

IMMUNIZATION = (
    _identifier(),
    _patient("patient"),
    p("vaccine-code", T, "The vaccine given (e.g. CVX)", "vaccineCode"),
    _dates("date", "When the vaccine was given", "occurrence", "DateTime"),
    _status(),
    p("location", R, "Where the vaccine was given", "location", targets=("Location",)),
    p("performer", R, "Who gave the vaccine", "performer.actor", targets=_PEOPLE),
    p("lot-number", S, "The vaccine's lot number", "lotNumber"),
)

PROCEDURE = (
    _identifier(),
    _patient(),
    _subject("Patient"),
    _code(),
    _dates("date", "When the procedure was performed", "performed", "DateTime", "Period"),
    _status(),
    p("category", T, "The classification of the procedure", "category"),
    _encounter(),
    p("performer", R, "Who performed the procedure", "performer.actor", targets=_PEOPLE),
    p("location", R, "Where the procedure happened", "location", targets=("Location",)),
    p("reason-code", T, "Why the procedure was performed (coded)", "reasonCode"),
)

DIAGNOSTIC_REPORT = (
    _identifier(),
    _patient(),
    _subject("Patient", "Location"),
    _code(),
    p("category", T, "The service section (e.g. LAB, RAD)", "category"),
    _dates("date", "The clinically relevant time", "effective", "DateTime", "Period"),
    p("issued", D, "When the report was released", "issued"),
    _status(),
    p("result", R, "An observation of the report", "result", targets=("Observation",)),
    _encounter(),
    p("performer", R, "Who is responsible for the report", "performer", targets=_PEOPLE),
    p("conclusion", T, "A coded conclusion (interpretation or diagnosis)", "conclusionCode"),
)

DOCUMENT_REFERENCE = (
    _identifier(),
    _patient(),
    _subject("Patient"),
    p("type", T, "The kind of document (LOINC)", "type"),
    p("category", T, "The categorization of the document", "category"),
    p("date", D, "When the reference was created", "date"),
    p("period", D, "The time of service documented", "context.period"),
    _status(),
    _encounter("context.encounter"),
    p("author", R, "Who authored the document", "author", targets=_PEOPLE),
    p("custodian", R, "Who maintains the document", "custodian", targets=("Organization",)),
    p("contenttype", T, "The MIME type of the content", "content.attachment.contentType"),
)

PROVENANCE = (
    p("target", R, "The resources the provenance is about", "target"),
    p("patient", R, "A patient the provenance is about", "target", targets=("Patient",)),
    p("agent", R, "Who participated", "agent.who", targets=_PEOPLE),
    p("agent-type", T, "How the agent participated", "agent.type"),
    p("recorded", D, "When the activity was recorded", "recorded"),
    p("when", D, "When the activity occurred", "occurredDateTime", "occurredPeriod"),
    p("entity", R, "An entity used in the activity", "entity.what"),
)

_ACTORS = ("Organization", "Patient", "Practitioner", "PractitionerRole", "CareTeam", "Group")

CONSENT = (
    _identifier(),
    _patient("patient"),
    _status(),
    p("scope", T, "Which of the four areas this resource covers", "scope"),
    p("category", T, "The classification of the consent statement", "category"),
    p("date", D, "When the consent was agreed to", "dateTime"),
    p("action", T, "The actions controlled by the consent", "provision.action"),
    p("actor", R, "Who the consent applies to", "provision.actor.reference", targets=_ACTORS),
    p("purpose", T, "The context of the activities the consent covers", "provision.purpose"),
    p("period", D, "The timeframe of the consent's rule", "provision.period"),
    p("data", R, "The actual data the consent covers", "provision.data.reference"),
    p("security-label", T, "The security labels the consent covers", "provision.securityLabel"),
    p(
        "organization",
        R,
        "The custodian of the consent",
        "organization",
        targets=("Organization",),
    ),
)

# A hospital's list of patients (a cohort, a clinic's panel): what a Group-level
# `$export` exports the compartments of.
GROUP = (
    _identifier(),
    p("type", T, "The type of resources the group contains", "type"),
    p("code", T, "The kind of resources contained", "code"),
    p("actual", T, "Descriptive or actual", "actual"),
    p(
        "member",
        R,
        "Reference to the group member",
        "member.entity",
        targets=("Patient", "Practitioner", "PractitionerRole", "Group"),
    ),
    p("characteristic", T, "Kind of characteristic", "characteristic.code"),
    p(
        "managing-entity",
        R,
        "Entity that is the custodian of the Group's definition",
        "managingEntity",
        targets=("Organization", "Practitioner", "PractitionerRole"),
    ),
)

BY_TYPE: dict[str, tuple[SearchParam, ...]] = {
    "Practitioner": PRACTITIONER,
    "PractitionerRole": PRACTITIONER_ROLE,
    "Location": LOCATION,
    "HealthcareService": HEALTHCARE_SERVICE,
    "Encounter": ENCOUNTER,
    "Observation": OBSERVATION,
    "Condition": CONDITION,
    "AllergyIntolerance": ALLERGY_INTOLERANCE,
    "MedicationRequest": MEDICATION_REQUEST,
    "MedicationStatement": MEDICATION_STATEMENT,
    "Immunization": IMMUNIZATION,
    "Procedure": PROCEDURE,
    "DiagnosticReport": DIAGNOSTIC_REPORT,
    "DocumentReference": DOCUMENT_REFERENCE,
    "Provenance": PROVENANCE,
    "Consent": CONSENT,
    "Group": GROUP,
}
