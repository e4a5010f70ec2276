"""What a resource puts into the search index: the rows searches find it by."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from exchange.indexing import DateRow, QuantityRow, ReferenceRow, StringRow, TokenRow, index_rows
from exchange.store import index_values_of
from puente.fhir.search import ParamType, SearchParam

UTC = dt.UTC


def _param(kind: ParamType, *paths: str) -> SearchParam:
    return SearchParam("p", kind, "", paths)


def test_a_name_is_indexed_by_each_part_folded_and_as_written() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {"use": "official", "family": "Núñez Pérez", "given": ["José", " "], "period": {}},
            {"text": "Pepe"},
        ],
    }
    assert index_rows(patient, _param(ParamType.STRING, "name")) == [
        StringRow("nunez perez", "Núñez Pérez"),
        StringRow("jose", "José"),
        StringRow("pepe", "Pepe"),
    ]


def test_tokens_of_codings_identifiers_codes_and_booleans_each_once() -> None:
    resource = {
        "resourceType": "Observation",
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "8867-4"},
                {"system": "http://loinc.org", "code": "8867-4"},
                {"system": "http://snomed.info/sct", "code": ""},
            ]
        },
        "identifier": [{"system": "urn:x", "value": 42}, {"system": "urn:y"}],
        "status": "final",
        "active": False,
    }
    param = _param(ParamType.TOKEN, "code", "identifier", "status", "active")
    assert index_rows(resource, param) == [
        TokenRow("http://loinc.org", "8867-4"),
        TokenRow("urn:x", "42"),
        TokenRow(None, "final"),
        TokenRow(None, "false"),
    ]


def test_a_long_code_is_cut_to_the_column() -> None:
    rows = index_rows({"status": "x" * 300}, _param(ParamType.TOKEN, "status"))
    assert rows == [TokenRow(None, "x" * 255)]


def test_dates_are_ranges_and_an_open_period_is_open_on_that_side() -> None:
    resource = {
        "birthDate": "1980-05",
        "period": {"start": "2024-03-01T10:00:00-06:00"},
        "issued": "not a date",
    }
    assert index_rows(resource, _param(ParamType.DATE, "birthDate", "issued")) == [
        DateRow(dt.datetime(1980, 5, 1, tzinfo=UTC), dt.datetime(1980, 6, 1, tzinfo=UTC))
    ]
    assert index_rows(resource, _param(ParamType.DATE, "period")) == [
        DateRow(dt.datetime(2024, 3, 1, 16, 0, tzinfo=UTC), dt.datetime.max.replace(tzinfo=UTC))
    ]


def test_references_by_type_and_id_versions_and_contained_left_out() -> None:
    resource = {
        "performer": [
            {"reference": "Practitioner/p1/_history/3"},
            {"reference": "https://other.example/fhir/Organization/o1"},
            {"reference": "#contained"},
            {"reference": "loose-id"},
            {"display": "no reference"},
        ]
    }
    assert index_rows(resource, _param(ParamType.REFERENCE, "performer")) == [
        ReferenceRow("Practitioner", "p1"),
        ReferenceRow("Organization", "o1"),
        ReferenceRow(None, "loose-id"),
    ]


def test_quantities_keep_their_unit_when_they_have_no_code() -> None:
    resource = {
        "component": [
            {"valueQuantity": {"value": 120, "unit": "mmHg"}},
            {
                "valueQuantity": {
                    "value": 80.5,
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                }
            },
            {"valueQuantity": {"value": "n/a"}},
        ]
    }
    assert index_rows(resource, _param(ParamType.QUANTITY, "component.valueQuantity")) == [
        QuantityRow(Decimal("120"), None, "mmHg"),
        QuantityRow(Decimal("80.5"), "http://unitsofmeasure.org", "mm[Hg]"),
    ]


def test_paths_walk_through_lists_at_every_level() -> None:
    resource = {
        "address": [{"city": "Juárez"}, {"city": None}, {"line": ["x"]}, {"city": "El Paso"}],
        "category": [{"coding": [{"code": "a"}]}, None, {"coding": [{"code": "b"}]}],
    }
    assert index_rows(resource, _param(ParamType.STRING, "address.city")) == [
        StringRow("juarez", "Juárez"),
        StringRow("el paso", "El Paso"),
    ]
    assert index_rows(resource, _param(ParamType.TOKEN, "category")) == [
        TokenRow(None, "a"),
        TokenRow(None, "b"),
    ]


def test_a_resource_gives_each_table_its_rows_with_the_resource_and_parameter() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "hgcj-1",
        "gender": "female",
        "birthDate": "1990-01-02",
        "name": [{"family": "García"}],
        "unknownElement": "ignored",
    }
    rows = {
        table.__tablename__: values
        for table, values in index_values_of(7, "Patient", patient).items()
    }
    assert (7, "Patient", "gender", None, "female") in rows["idx_token"]
    assert (7, "Patient", "family", "garcia", "García") in rows["idx_string"]
    assert (
        7,
        "Patient",
        "birthdate",
        dt.datetime(1990, 1, 2, tzinfo=UTC),
        dt.datetime(1990, 1, 3, tzinfo=UTC),
    ) in rows["idx_date"]
    assert rows["idx_reference"] == []
    assert rows["idx_quantity"] == []
