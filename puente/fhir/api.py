"""Public FHIR endpoints of the shell: the CapabilityStatement and SMART discovery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from puente.fhir.capability import capability_statement
from puente.fhir.registry import REGISTRY
from puente.fhir.responses import FHIRResponse
from puente.settings import get_settings
from puente.web import TransactionalRoute

router = APIRouter(prefix="/fhir", route_class=TransactionalRoute, tags=["FHIR"])


@router.get("/metadata", summary="CapabilityStatement (public)")
def metadata() -> FHIRResponse:
    return FHIRResponse(capability_statement(REGISTRY, get_settings()))


def smart_configuration() -> dict[str, Any]:
    settings = get_settings()
    base = settings.base_url.rstrip("/")
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/auth/authorize",
        "token_endpoint": settings.token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [
            "openid",
            "fhirUser",
            "launch/patient",
            "system/*.cruds",
            "user/*.rs",
            "patient/*.rs",
        ],
        "capabilities": [
            "client-confidential-asymmetric",
            "client-confidential-symmetric",
            "client-public",
            "launch-standalone",
            "context-standalone-patient",
            "permission-v2",
            "permission-patient",
            "permission-user",
        ],
    }


@router.get("/.well-known/smart-configuration", summary="SMART configuration (public)")
def smart_config() -> FHIRResponse:
    response = FHIRResponse(smart_configuration())
    response.media_type = "application/json"
    response.headers["content-type"] = "application/json"
    return response
