"""What every search endpoint does around its domain's query: read the parameters (query
string, or a form for `POST _search`) and answer with a searchset Bundle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from puente.errors import Issue
from puente.fhir.bundle import Cursors, Page, searchset
from puente.fhir.media import FORM, check_content_type
from puente.fhir.outcome import operation_outcome
from puente.fhir.responses import FHIRResponse
from puente.fhir.search import SearchRequest
from puente.settings import get_settings
from translation.i18n import N_


def query_items(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


async def form_items(request: Request) -> list[tuple[str, str]]:
    """`POST [type]/_search`: the query string's parameters and the form's together."""
    check_content_type(request, frozenset({FORM}))
    body = (await request.body()).decode("utf-8", errors="replace")
    return query_items(request) + parse_qsl(body, keep_blank_values=True)


def search_response(
    *,
    resource_type: str,
    resources: Sequence[dict[str, Any]],
    total: int | None,
    parsed: SearchRequest,
    locale: str,
    included: Sequence[dict[str, Any]] = (),
    cursors: Cursors | None = None,
    issues: Sequence[Issue] = (),
) -> FHIRResponse:
    """A searchset page; parameters dropped under `handling=lenient` are named in an
    OperationOutcome entry (R4 3.1.1.4.1), with `issues` (records withheld...)."""
    settings = get_settings()
    outcome = None
    found = [
        Issue(
            N_("warning.search_param_ignored"),
            {"name": name[:64]},
            code="not-supported",
            severity="warning",
        )
        for name in parsed.ignored
    ] + list(issues)
    if found:
        outcome = operation_outcome(found, locale)
    page = Page(
        base=f"{settings.fhir_base_url}/{resource_type}",
        params=parsed.used,
        offset=parsed.offset,
        count=parsed.count,
        total=total,
        returned=len(resources),
        cursors=cursors,
    )
    bundle = searchset(
        resources,
        fhir_base=settings.fhir_base_url,
        page=page,
        outcome=outcome,
        included=included,
    )
    return FHIRResponse(bundle)
