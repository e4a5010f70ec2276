"""JSON responses with FHIR headers."""

from __future__ import annotations

import datetime as dt
import json
from email.utils import format_datetime
from typing import Any

from starlette.responses import Response

from puente.errors import InvalidRequest
from puente.fhir.media import FHIR_JSON_UTF8
from translation.i18n import N_


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class FHIRResponse(Response):
    media_type = FHIR_JSON_UTF8

    def render(self, content: Any) -> bytes:
        return _dumps(content)


def weak_etag(version: int) -> str:
    return f'W/"{version}"'


def version_from_etag(text: str) -> int:
    """`W/"3"` (or a strong `"3"`, read the same) as the version number, for `If-Match`
    headers and Bundle entries' `request.ifMatch`; 400 for anything else."""
    value = text.strip()
    value = value[2:] if value.startswith("W/") else value
    value = value.strip('"')
    if not value.isdigit():
        raise InvalidRequest(N_("error.if_match_invalid"))
    return int(value)


def http_date(instant: dt.datetime) -> str:
    return format_datetime(instant.astimezone(dt.UTC), usegmt=True)


def resource_response(
    resource: dict[str, Any],
    *,
    status_code: int = 200,
    version: int | None = None,
    last_updated: dt.datetime | None = None,
    location: str | None = None,
) -> FHIRResponse:
    headers: dict[str, str] = {}
    if version is not None:
        headers["ETag"] = weak_etag(version)
    if last_updated is not None:
        headers["Last-Modified"] = http_date(last_updated)
    if location:
        headers["Location"] = location
    return FHIRResponse(resource, status_code=status_code, headers=headers)
