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
# Operations that also answer in another format, by the end of their path: the media
# types and `_format` values they take besides JSON (e.g. `$disclosures` as text/csv).
# The endpoint picks the format (`prefers`); this only keeps the 406 away from them.
_ALTERNATIVES: dict[str, frozenset[str]] = {}


def allow_format(path_suffix: str, *names: str) -> None:
    """Let requests whose path ends with `path_suffix` ask for `names` (media types or
    `_format` aliases) as well as JSON."""
    _ALTERNATIVES[path_suffix] = _ALTERNATIVES.get(path_suffix, frozenset()) | set(names)


def _alternatives(request: Request) -> frozenset[str]:
    path = request.url.path
    found: frozenset[str] = frozenset()
    for suffix, names in _ALTERNATIVES.items():
        if path.endswith(suffix):
            found |= names
    return found


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
    extra = _alternatives(request)
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt.split(";")[0].strip().lower() not in FORMAT_ALIASES | extra:
            raise NotAcceptable(N_("error.format_unsupported"), format=fmt[:40])
        return
    header = request.headers.get("accept")
    if not header or not header.strip():
        return
    if not any(m in ACCEPTABLE | extra and q > 0 for m, q in _media_types(header)):
        raise NotAcceptable(N_("error.not_acceptable"))


def prefers(request: Request, media: str, aliases: frozenset[str] = frozenset()) -> bool:
    """Whether the client asks for `media` rather than JSON: `_format` names it (or one
    of its `aliases`), or Accept rates it at least as high as any JSON type it names
    (a `*/*` beside it does not count against it)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        return fmt.split(";")[0].strip().lower() in aliases | {media}
    ranked = _media_types(request.headers.get("accept") or "")
    wanted = max((q for m, q in ranked if m == media), default=0.0)
    json = max((q for m, q in ranked if m in BODY_TYPES), default=0.0)
    return wanted > 0 and wanted >= json


def check_content_type(request: Request, allowed: frozenset[str] = BODY_TYPES) -> None:
    """415 for a body in anything but the listed media types (XML included)."""
    header = request.headers.get("content-type", "")
    media = header.split(";")[0].strip().lower()
    if media not in allowed:
        raise UnsupportedMediaType(N_("error.unsupported_media_type"), media_type=media[:60])
