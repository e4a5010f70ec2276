"""Resource types the store serves, with their search parameters (R4 definitions)."""

from __future__ import annotations

from puente.fhir.registry import ResourceCapability
from puente.fhir.search import ParamType, SearchParam

# Both are answered from the resource table's own columns, not from index rows.
_ID = SearchParam("_id", ParamType.TOKEN, "Logical id of the resource")
_LAST_UPDATED = SearchParam("_lastUpdated", ParamType.DATE, "When the resource last changed")

# Directory data, not patient data: any authenticated role with a scope on the type reads it.
DIRECTORY_TYPES = frozenset({"Organization"})

ORGANIZATION = ResourceCapability(
    type="Organization",
    interactions=("read", "vread", "search-type"),
    documentation=(
        "Each country (Mexico, United States) and each hospital system, partOf its country. "
        "Registered by operators with `puente system add`."
    ),
    search_params=(
        _ID,
        _LAST_UPDATED,
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

STORE_TYPES: dict[str, ResourceCapability] = {c.type: c for c in (ORGANIZATION,)}
