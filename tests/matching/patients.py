"""FHIR Patient JSON as each hospital writes it, for the matching tests."""

from __future__ import annotations

from typing import Any

from exchange.matching.names import FATHERS, MOTHERS

CURP_SYSTEM = "https://www.gob.mx/curp"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"


def patient(
    *,
    family: str | None = None,
    given: list[str] | None = None,
    fathers: str | None = None,
    mothers: str | None = None,
    on_name: bool = False,
    gender: str | None = None,
    birth_date: str | None = None,
    curp: str | None = None,
    ssn: str | None = None,
    phones: list[str] | None = None,
    country: str | None = None,
    postal_code: str | None = None,
    city: str | None = None,
    pid: str = "p1",
) -> dict[str, Any]:
    name: dict[str, Any] = {"use": "official"}
    if family is not None:
        name["family"] = family
    if given is not None:
        name["given"] = given
    extensions = [
        {"url": url, "valueString": value}
        for url, value in ((FATHERS, fathers), (MOTHERS, mothers))
        if value is not None
    ]
    if extensions:
        if on_name:
            name["extension"] = extensions
        else:
            name["_family"] = {"extension": extensions}
    resource: dict[str, Any] = {"resourceType": "Patient", "id": pid, "name": [name]}
    if gender:
        resource["gender"] = gender
    if birth_date:
        resource["birthDate"] = birth_date
    identifiers = []
    if curp:
        identifiers.append({"system": CURP_SYSTEM, "value": curp})
    if ssn:
        identifiers.append({"system": SSN_SYSTEM, "value": ssn})
    if identifiers:
        resource["identifier"] = identifiers
    if phones:
        resource["telecom"] = [{"system": "phone", "value": p} for p in phones]
    address = {
        k: v
        for k, v in (("country", country), ("postalCode", postal_code), ("city", city))
        if v is not None
    }
    if address:
        resource["address"] = [address]
    return resource
