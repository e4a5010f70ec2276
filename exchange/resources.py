"""Resource types the store serves, with their search parameters (R4 definitions)."""

from __future__ import annotations

import dataclasses

from exchange.search_params import BY_TYPE
from puente.fhir.registry import ResourceCapability
from puente.fhir.search import ParamType, SearchParam

# Both are answered from the resource table's own columns, not from index rows.
_ID = SearchParam("_id", ParamType.TOKEN, "Logical id of the resource")
_LAST_UPDATED = SearchParam("_lastUpdated", ParamType.DATE, "When the resource last changed")
# From the labels kept beside the resource (consent.models.ResourceLabel): the sender's own
# and those Puente computed, as `meta.security` shows them.
_SECURITY = SearchParam(
    "_security", ParamType.TOKEN, "Security labels (meta.security), the sender's and Puente's"
)

# Directory data, not patient data: any authenticated role with a scope on the type reads it.
DIRECTORY_TYPES = frozenset({"Organization"})

# Every store type: read and search, writes (exchange.writes) and history (exchange.history).
READ_WRITE = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)

ORGANIZATION = ResourceCapability(
    type="Organization",
    interactions=READ_WRITE,
    documentation=(
        "Each country (Mexico, United States) and each hospital system, partOf its country. "
        "Registered by operators with `puente system add`."
    ),
    search_params=(
        _ID,
        _LAST_UPDATED,
        _SECURITY,
        SearchParam(
            "name",
            ParamType.STRING,
            "A portion of the organization's name or alias (accent- and case-insensitive)",
            ("name", "alias"),
        ),
        SearchParam(
            "identifier", ParamType.TOKEN, "Any identifier for the organization", ("identifier",)
        ),
        SearchParam(
            "partof",
            ParamType.REFERENCE,
            "The organization of which this organization forms a part",
            ("partOf",),
            ("Organization",),
        ),
        SearchParam("type", ParamType.TOKEN, "A code for the type of organization", ("type",)),
        SearchParam("active", ParamType.TOKEN, "Is the Organization record active", ("active",)),
        SearchParam(
            "address-country",
            ParamType.STRING,
            "A country specified in an address",
            ("address.country",),
        ),
    ),
)

READ_SEARCH = READ_WRITE


def _patient_reference(name: str, path: str, documentation: str) -> SearchParam:
    return SearchParam(name, ParamType.REFERENCE, documentation, (path,), ("Patient",))


PATIENT = ResourceCapability(
    type="Patient",
    interactions=READ_SEARCH,
    documentation="A person's demographics as one hospital system registered them.",
    search_params=(
        _ID,
        _LAST_UPDATED,
        _SECURITY,
        SearchParam("identifier", ParamType.TOKEN, "A patient identifier", ("identifier",)),
        SearchParam(
            "name",
            ParamType.STRING,
            "Any part of a name (accent- and case-insensitive)",
            ("name",),
        ),
        SearchParam("family", ParamType.STRING, "A portion of the family name", ("name.family",)),
        SearchParam("given", ParamType.STRING, "A portion of the given name", ("name.given",)),
        SearchParam("birthdate", ParamType.DATE, "The patient's date of birth", ("birthDate",)),
        SearchParam("gender", ParamType.TOKEN, "Gender of the patient", ("gender",)),
        SearchParam("address-city", ParamType.STRING, "A city in an address", ("address.city",)),
        SearchParam("address-state", ParamType.STRING, "A state in an address", ("address.state",)),
        SearchParam(
            "address-postalcode",
            ParamType.STRING,
            "A postal code in an address",
            ("address.postalCode",),
        ),
        SearchParam("telecom", ParamType.TOKEN, "Any kind of contact", ("telecom",)),
        SearchParam("phone", ParamType.TOKEN, "A phone number", ("telecom",)),
        SearchParam("active", ParamType.TOKEN, "Whether the record is active", ("active",)),
        SearchParam(
            "general-practitioner",
            ParamType.REFERENCE,
            "The patient's nominated primary care provider",
            ("generalPractitioner",),
            ("Practitioner", "PractitionerRole", "Organization"),
        ),
        SearchParam(
            "organization",
            ParamType.REFERENCE,
            "The organization that is the custodian of the record",
            ("managingOrganization",),
            ("Organization",),
        ),
    ),
)

# Types whose parameters beyond the common ones come with the search work of issue 4.
_OTHER_TYPES = (
    "Practitioner",
    "PractitionerRole",
    "Location",
    "HealthcareService",
    "Encounter",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
    "Procedure",
    "DiagnosticReport",
    "DocumentReference",
    "Provenance",
    "Consent",
    "Group",
)


def _basic(resource_type: str) -> ResourceCapability:
    params = (_ID, _LAST_UPDATED, _SECURITY, *BY_TYPE[resource_type])
    return ResourceCapability(type=resource_type, interactions=READ_SEARCH, search_params=params)


def _with_includes(types: tuple[ResourceCapability, ...]) -> dict[str, ResourceCapability]:
    """`searchInclude` and `searchRevInclude` from the reference parameters (R4 3.1.1.5.9)."""
    served = {c.type for c in types}
    references = [
        (c.type, param)
        for c in types
        for param in c.search_params
        if param.type is ParamType.REFERENCE
    ]
    out = {}
    for c in types:
        include = tuple(f"{c.type}:{param.name}" for owner, param in references if owner == c.type)
        rev_include = tuple(
            f"{owner}:{param.name}"
            for owner, param in references
            if c.type in param.targets or (not param.targets and c.type in served)
        )
        out[c.type] = dataclasses.replace(
            c, search_include=("*", *include) if include else (), search_rev_include=rev_include
        )
    return out


STORE_TYPES: dict[str, ResourceCapability] = _with_includes(
    (ORGANIZATION, PATIENT, *(_basic(t) for t in _OTHER_TYPES))
)
