"""Required code bindings: what fhir.resources lets through, and the 400 Puente answers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.patient import Patient

from exchange import bindings
from exchange.resources import STORE_TYPES
from exchange.validation import validate
from puente.errors import InvalidResource
from tests.factories import bearer, fhir_json, patient

WRITE = {**bearer("system", "hgcj"), **fhir_json()}


def _refused(resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(InvalidResource) as refused:
        validate(resource)
    assert refused.value.status_code == 400
    return [(i.code, i.expression[0], i.params["allowed"]) for i in refused.value.issues]


def test_fhir_resources_does_not_check_required_bindings() -> None:
    """Why bindings.py exists: the R4B model takes any code (if a release starts checking,
    the walk can go)."""
    assert Patient.model_validate({"resourceType": "Patient", "gender": "M"}).gender == "M"


def test_gender_m_is_400_naming_the_element_and_the_codes(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", json=patient(gender="M"), headers={**WRITE, "Accept-Language": "es-MX"}
    )
    assert response.status_code == 400
    [issue] = response.json()["issue"]
    assert issue["code"] == "code-invalid"
    assert issue["expression"] == ["Patient.gender"]
    assert issue["details"]["text"] == (
        "Patient.gender debe contener uno de los códigos de su conjunto de valores "
        "obligatorio: male, female, other, unknown."
    )
    assert client.get("/fhir/Patient", headers=WRITE).json().get("total") == 0


def test_nested_contained_and_extension_codes_are_checked() -> None:
    resource = patient(
        contact=[{"gender": "female"}, {"gender": "F"}],
        telecom=[{"system": "phone", "use": "cell", "value": "656-000-0000"}],
        extension=[{"url": "urn:x", "valueContactPoint": {"system": "pigeon"}}],
        contained=[{"resourceType": "Practitioner", "id": "p1", "gender": "x"}],
    )
    assert [(code, path) for code, path, _ in _refused(resource)] == [
        ("code-invalid", "Patient.contact[1].gender"),
        ("code-invalid", "Patient.telecom[0].use"),
        ("code-invalid", "Patient.extension[0].valueContactPoint.system"),
        ("code-invalid", "Patient.contained[0].gender"),
    ]


def test_lists_the_generator_cut_short_are_completed_from_the_specification() -> None:
    encounter = {"resourceType": "Encounter", "status": "entered-in-error", "class": {"code": "x"}}
    assert validate(encounter) is encounter
    [(_, path, allowed)] = _refused({**encounter, "status": "done"})
    assert path == "Encounter.status"
    assert allowed.endswith("cancelled, entered-in-error, unknown")
    observation = {"resourceType": "Observation", "status": "corrected", "code": {"text": "x"}}
    assert validate(observation) is observation


def test_every_cut_short_list_of_a_stored_type_has_its_completion() -> None:
    """A fhir.resources upgrade that cuts another stored type's list short must add its
    completion here, or that element goes unchecked."""
    heads = set(bindings.cut_short(sorted(STORE_TYPES)).values())
    assert heads <= set(bindings.COMPLETIONS)
    assert bindings.allowed(("text/cql", "etc.")) is None
