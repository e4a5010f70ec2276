"""Content negotiation. Puente speaks JSON only; no XML parser is ever run."""

from __future__ import annotations

from starlette.requests import Request

from puente.errors import NotAcceptable, UnsupportedMediaType
from translation.i18n import N_

FHIR_JSON = "application/fhir+json"
FHIR_JSON_UTF8 = "application/fhir+json; charset=utf-8"
JSON_PATCH = "application/json-patch+json"
FHIR_NDJSON = "application/fhir+ndjson"
FORM = "application/x-www-form-urlencoded"
ACCEPTABLE = frozenset({FHIR_JSON, "application/json", "*/*", "application/*"})
FORMAT_ALIASES = frozenset({"json", FHIR_JSON, "application/json"})
BODY_TYPES = frozenset({FHIR_JSON, "application/json"})


def _media_types(header: str) -> list[tuple[str, float]]:
    found = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            found.append((media, quality))
    return found


def check_accept(request: Request) -> None:
    """406 unless the client takes JSON (`_format` wins over the Accept header)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt.split(";")[0].strip().lower() not in FORMAT_ALIASES:
            raise NotAcceptable(N_("error.format_unsupported"), format=fmt[:40])
        return
    header = request.headers.get("accept")
    if not header or not header.strip():
        return
    if not any(m in ACCEPTABLE and q > 0 for m, q in _media_types(header)):
        raise NotAcceptable(N_("error.not_acceptable"))


def check_content_type(request: Request, allowed: frozenset[str] = BODY_TYPES) -> None:
    """415 for a body in anything but the listed media types (XML included)."""
    header = request.headers.get("content-type", "")
    media = header.split(";")[0].strip().lower()
    if media not in allowed:
        raise UnsupportedMediaType(N_("error.unsupported_media_type"), media_type=media[:60])
