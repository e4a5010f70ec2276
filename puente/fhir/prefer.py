"""The `Prefer` header (RFC 7240) as FHIR uses it: handling, return, respond-async."""

from __future__ import annotations

from starlette.requests import Request


def preferences(request: Request) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for part in header.split(","):
            name, _, value = part.strip().partition("=")
            if name:
                found[name.strip().lower()] = value.strip().strip('"').lower()
    return found


def lenient(request: Request) -> bool:
    return preferences(request).get("handling") == "lenient"
