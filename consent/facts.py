"""From what the shell and the store know to what the engine reads (pure, no I/O).

`requester_for` turns the request's `Caller` into a `Requester`; `record_facts` a stored
resource (with its owner, labels and the MPI's linked Patient ids) into `RecordFacts`;
`patient_of` says which Patient a resource is about, so the gate can look up the links.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from consent.codes import Label
from consent.engine import BreakGlass, RecordFacts, Requester
from puente.auth.caller import Caller
from puente.fhir.dates import date_range

# The element naming the Patient a resource is about (R4 Patient compartment).
_PATIENT_ELEMENT = {
    "AllergyIntolerance": "patient",
    "Consent": "patient",
    "Immunization": "patient",
    "Condition": "subject",
    "DiagnosticReport": "subject",
    "DocumentReference": "subject",
    "Encounter": "subject",
    "MedicationRequest": "subject",
    "MedicationStatement": "subject",
    "Observation": "subject",
    "Procedure": "subject",
}
# Where each type says when its clinical content happened, first found wins.
_TIME_ELEMENTS = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "onsetDateTime",
    "onsetPeriod",
    "performedDateTime",
    "performedPeriod",
    "occurrenceDateTime",
    "period",
    "authoredOn",
    "recordedDate",
    "issued",
    "date",
)


def country_organization(country: str | None) -> str | None:
    """The Organization of a country (`Organization/mx`, exchange.service's convention),
    which every hospital of that country is `partOf`."""
    return f"Organization/{country.lower()}" if country else None


def requester_for(caller: Caller, *, break_glass: Iterable[BreakGlass] = ()) -> Requester:
    """The engine's view of the caller; `break_glass` holds the grants not yet expired."""
    patient = None
    if caller.role == "patient" and caller.fhir_user and caller.fhir_user.startswith("Patient/"):
        patient = caller.fhir_user.removeprefix("Patient/")
    return Requester(
        role=caller.role,
        system=caller.org_code,
        organization=caller.organization,
        country=caller.country,
        country_organization=country_organization(caller.country),
        purpose=caller.purpose_of_use,
        patient=patient,
        break_glass=tuple(break_glass),
    )


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """The id of the Patient `resource` is about (its own id for a Patient), or None."""
    kind = resource.get("resourceType")
    if kind == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    element = _PATIENT_ELEMENT.get(str(kind))
    reference = (resource.get(element) or {}).get("reference") if element else None
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return reference.removeprefix("Patient/")
    return None


def clinical_time(resource: Mapping[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """When the content happened, as `[start, end]` UTC instants (either may be None)."""
    for name in _TIME_ELEMENTS:
        value = resource.get(name)
        try:
            if isinstance(value, str):
                low, high = date_range(value)
                return low, high - dt.timedelta(microseconds=1)
            if isinstance(value, Mapping) and (value.get("start") or value.get("end")):
                start = date_range(value["start"])[0] if value.get("start") else None
                end = date_range(value["end"])[1] if value.get("end") else None
                return start, end - dt.timedelta(microseconds=1) if end else None
        except ValueError:
            continue
    return None, None


def record_facts(
    resource: Mapping[str, Any],
    *,
    owner: str,
    owner_country: str | None,
    labels: Collection[Label],
    patients: Collection[str],
) -> RecordFacts:
    """The facts of a stored resource; `patients` is the Patient it is about and every
    Patient record the MPI links to it (empty for a resource about no patient)."""
    start, end = clinical_time(resource)
    return RecordFacts(
        resource_type=str(resource.get("resourceType")),
        resource_id=str(resource.get("id")),
        owner=owner,
        owner_country=owner_country,
        owner_organization=f"Organization/{owner}",
        owner_country_organization=country_organization(owner_country),
        patients=frozenset(patients),
        labels=frozenset(labels),
        start=start,
        end=end,
    )
