"""The CapabilityStatement, generated from what the domains registered (never by hand)."""

from __future__ import annotations

from typing import Any

from puente import __version__
from puente.fhir.registry import Registry
from puente.fhir.search import CONTROL
from puente.settings import Settings

SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
CAPABILITY_RELEASE_DATE = "2026-11-24"

_COMMON_PARAMS = (
    ("_id", "token", "Logical id of the resource"),
    ("_lastUpdated", "date", "When the resource last changed"),
)


def _resource_entry(cap: Any) -> dict[str, Any]:
    params = [
        {"name": name, "type": kind, "documentation": doc} for name, kind, doc in _COMMON_PARAMS
    ]
    params += [
        {"name": p.name, "type": p.type.value, "documentation": p.documentation}
        for p in cap.search_params
        if p.name not in {"_id", "_lastUpdated"}
    ]
    entry: dict[str, Any] = {
        "type": cap.type,
        "interaction": [{"code": code} for code in cap.interactions],
        "versioning": cap.versioning,
        "readHistory": "vread" in cap.interactions,
        "updateCreate": "update" in cap.interactions,
        "conditionalCreate": cap.conditional_create,
        "conditionalUpdate": cap.conditional_update,
        "conditionalDelete": cap.conditional_delete,
    }
    if cap.documentation:
        entry["documentation"] = cap.documentation
    if cap.profile:
        entry["profile"] = cap.profile
    if "search-type" in cap.interactions:
        entry["searchParam"] = params
    if cap.search_include:
        entry["searchInclude"] = list(cap.search_include)
    if cap.search_rev_include:
        entry["searchRevInclude"] = list(cap.search_rev_include)
    if cap.operations:
        entry["operation"] = [
            {"name": op.name, "definition": op.definition, "documentation": op.documentation}
            for op in cap.operations
        ]
    return entry


def capability_statement(registry: Registry, settings: Settings) -> dict[str, Any]:
    base = settings.base_url.rstrip("/")
    security = {
        "cors": bool(settings.cors_origins),
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": (
            "OAuth2 bearer tokens. Hospital systems: SMART Backend Services (private_key_jwt, "
            "RS384/ES384) or client_secret_basic. People: authorization code with PKCE (S256)."
        ),
        "extension": [
            {
                "url": SMART_OAUTH_URIS,
                "extension": [
                    {"url": "token", "valueUri": f"{base}/auth/token"},
                    {"url": "authorize", "valueUri": f"{base}/auth/authorize"},
                ],
            }
        ],
    }
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": (
            "Searches reject unknown parameters with 400 (safer for health data than "
            "ignoring them) unless the request carries `Prefer: handling=lenient`. Result "
            f"parameters understood everywhere: {', '.join(sorted(CONTROL))}. "
            "`_sort` takes several comma-separated keys, each `-` for descending: `_id`, "
            "`_lastUpdated`, or any string, token or date parameter of the type (its least "
            "indexed value; resources without one come last). `_elements` keeps the listed "
            "top-level elements with id, meta and resourceType, tagged SUBSETTED. "
            "`_include=Type:param[:Target]` (or `Type:*`) and `_revinclude` add the "
            "referenced or referencing resources the caller may see, as `include` entries "
            "not counted in the total. Chaining one level: `subject:Patient.name=...`. "
            "Paging is by keyset: `next`/`previous` links carry an opaque `_page_token`, so "
            "pages neither repeat nor skip resources while data changes."
        ),
        "security": security,
        "resource": [_resource_entry(c) for _, c in sorted(registry.resources.items())],
    }
    if registry.system_interactions:
        rest["interaction"] = [{"code": c} for c in registry.system_interactions]
    if registry.system_operations:
        rest["operation"] = [
            {"name": op.name, "definition": op.definition} for op in registry.system_operations
        ]
    return {
        "resourceType": "CapabilityStatement",
        "id": "puente",
        "url": f"{settings.fhir_base_url}/metadata",
        "name": "Puente",
        "title": "Puente cross-border health record exchange",
        "status": "active",
        "date": CAPABILITY_RELEASE_DATE,
        "publisher": "Puente consortium (Ciudad Juárez - El Paso)",
        "kind": "instance",
        "software": {"name": "Puente", "version": __version__},
        "implementation": {"description": "Puente FHIR API", "url": settings.fhir_base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
