"""The OperationDefinitions of `$match` and `$ihe-pix`, as the CapabilityStatement names them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from puente.fhir.registry import OperationDef, operation_param, operation_url
from puente.fhir.registry import operation_definition as definition_of


@dataclass(frozen=True)
class Operation:
    id: str
    code: str
    name: str
    title: str
    description: str
    affects_state: bool
    parameters: tuple[dict[str, Any], ...]

    @property
    def url(self) -> str:
        return operation_url(self.id)

    def declared(self) -> OperationDef:
        return OperationDef(name=self.code, definition=self.url, documentation=self.title)


MATCH = Operation(
    id="Patient-match",
    code="match",
    name="PatientMatch",
    title="Find the Patients that may be the person described (R4 Patient/$match)",
    description=(
        "Scores the caller's visible Patients that share a blocking key with the given "
        "Patient (birth date or swapped birth date, phonetic surname and year, canonical "
        "given name, CURP, SSN, phone) with Puente's Fellegi-Sunter model and returns them "
        "best first. search.score is the match probability (0-1), the same number "
        "`puente link` writes; the match-grade extension says certain, probable or "
        "possible. Only records the caller may see are candidates."
    ),
    affects_state=False,
    parameters=(
        operation_param(
            "resource", "in", 1, "1", "Patient", "The Patient to find (validated as R4)."
        ),
        operation_param(
            "onlyCertainMatches",
            "in",
            0,
            "1",
            "boolean",
            "true: return nothing unless exactly one candidate is certain, then only it.",
        ),
        operation_param(
            "count", "in", 0, "1", "integer", "At most this many candidates (10; max 100)."
        ),
        operation_param(
            "return",
            "out",
            1,
            "1",
            "Bundle",
            "A searchset Bundle; each entry.search has mode `match`, `score` and the "
            "http://hl7.org/fhir/StructureDefinition/match-grade extension.",
        ),
    ),
)

IHE_PIX = Operation(
    id="Patient-ihe-pix",
    code="ihe-pix",
    name="PIXmQuery",
    title="IHE PIXm (ITI-83): identifiers of the same patient in other systems",
    description=(
        "Given one identifier (`sourceIdentifier=system|value`), the records the master "
        "patient index links to the Patient that carries it, as targetIdentifier and "
        "targetId, narrowed to the `targetSystem`s asked for. Only records the caller may "
        "see; an identifier no visible Patient carries answers 404. Recognized domains are "
        "the identifier systems registered to a hospital system: an unregistered "
        "sourceIdentifier system answers 400, an unregistered targetSystem 403 (ITI-83)."
    ),
    affects_state=False,
    parameters=(
        operation_param("sourceIdentifier", "in", 1, "1", "Identifier", "`system|value` (token)."),
        operation_param("targetSystem", "in", 0, "*", "uri", "Only identifiers of these systems."),
        operation_param("targetIdentifier", "out", 0, "*", "Identifier", "A linked identifier."),
        operation_param("targetId", "out", 0, "*", "Reference", "A linked Patient."),
    ),
)


def operation_definition(operation: Operation) -> dict[str, Any]:
    """The OperationDefinition resource (valid R4)."""
    return definition_of(
        operation.id,
        name=operation.name,
        title=operation.title,
        description=operation.description,
        code=operation.code,
        affects_state=operation.affects_state,
        parameters=list(operation.parameters),
        resources=("Patient",),
        on_type=True,
    )
