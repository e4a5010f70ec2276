"""`GET /fhir/Patient/{id}/$disclosures`: the accounting of disclosures over HTTP.

FHIR (the default): a `searchset` Bundle of AuditEvent, newest first, `total` and keyset
`next`/`previous` links; each AuditEvent carries a narrative in the caller's language.
`_format=text/csv` (or `csv`), or `Accept: text/csv`: the whole accounting between `start`
and `end` as a CSV download in the caller's language. Reading the accounting is itself
audited (an `operation` note naming the Patient and the AuditEvents shown).

Included before the store's router, whose `/fhir/{type}/{id}/...` routes would take it.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.responses import Response

import exchange.api  # noqa: F401 - registers Patient before its operation is added here
from consent import accounting
from consent.accounting_render import csv_text, disclosure_event
from puente.fhir.bundle import Cursors, Page, searchset
from puente.fhir.media import allow_format, prefers
from puente.fhir.registry import OperationDef, declare_operation, operation_param, operation_url
from puente.fhir.registry import operation_definition as definition_of
from puente.fhir.responses import FHIRResponse
from puente.fhir.searching import query_items
from puente.settings import get_settings
from puente.web import CallerDep, ContextDep, SessionDep, TransactionalRoute

router = APIRouter(
    prefix="/fhir", route_class=TransactionalRoute, tags=["Accounting of disclosures"]
)

OPERATION_ID = "Patient-disclosures"
OPERATION = "$disclosures"
CSV = "text/csv"
CSV_ALIASES = frozenset({"csv", CSV})
allow_format(f"/{OPERATION}", *CSV_ALIASES)


# `$disclosures` on Patient in the CapabilityStatement.
declare_operation(
    OperationDef(
        name="disclosures",
        definition=operation_url(OPERATION_ID),
        documentation=(
            "Accounting of disclosures: who at another hospital saw this person's records, "
            "when, how and why (AuditEvents, or CSV)."
        ),
    ),
    "Patient",
)


def operation_definition() -> dict[str, Any]:
    """The OperationDefinition the CapabilityStatement points to (valid R4)."""
    return definition_of(
        OPERATION_ID,
        name="AccountingOfDisclosures",
        title="Accounting of disclosures: who on the other side saw this person's records",
        description=(
            "Every disclosure of this person's records to another hospital (the Patient and "
            "the records the master patient index links to it), newest first, from the "
            "audit trail: when, who (practitioner, hospital, country), which records, how "
            "(viewed, searched, history, everything, export...), why (purpose of use) and "
            "whether it was break-the-glass. Puente lists disclosures for treatment too, "
            "beyond what 45 CFR 164.528 requires. A hospital's and the patient's own reads "
            "are not disclosures. For the patient (a record of their own or linked to it) "
            "and the consent officers of the hospital that holds the Patient; another "
            "Patient is 404, other roles 403. Dates are days on the border's clock "
            "(PUENTE_TIMEZONE). The response is a searchset Bundle of AuditEvent (IHE BALP "
            "shape, with a narrative in the caller's language and BTG in purposeOfEvent "
            "after a break-the-glass), paged by `_page_token`; with `_format=text/csv` or "
            "`Accept: text/csv`, the whole accounting as a CSV attachment (localized "
            "headers; cells a spreadsheet would run as a formula start with an apostrophe)."
            " Reading it is audited."
        ),
        affects_state=False,
        code="disclosures",
        resources=("Patient",),
        system=False,
        on_type=False,
        instance=True,
        parameters=[
            operation_param(
                "start", "in", 0, "1", "date", "From this day on (YYYY, YYYY-MM, YYYY-MM-DD)."
            ),
            operation_param("end", "in", 0, "1", "date", "Up to and including this day."),
            operation_param(
                "_count",
                "in",
                0,
                "1",
                "integer",
                f"Entries per page ({accounting.DEFAULT_COUNT}; at most {accounting.MAX_COUNT});"
                " a CSV download holds them all.",
            ),
            operation_param(
                "return",
                "out",
                1,
                "1",
                "Bundle",
                "A searchset Bundle of AuditEvent, newest first, with total and paging links.",
            ),
        ],
    )


def _filename(patient_id: str) -> str:
    return f"disclosures-{re.sub(r'[^A-Za-z0-9.-]', '-', patient_id[:64])}.csv"


@router.get(
    f"/Patient/{{res_id}}/{OPERATION}",
    summary="Accounting of disclosures: who on the other side saw this person's records",
)
def disclosures(
    res_id: str, request: Request, session: SessionDep, caller: CallerDep, ctx: ContextDep
) -> Response:
    note = ctx.note("operation", "E", entities=["AuditEvent"], patients=[f"Patient/{res_id[:64]}"])
    accounting.authorize(caller)
    query = accounting.parse(query_items(request))
    zone = ZoneInfo(get_settings().timezone)
    if prefers(request, CSV, CSV_ALIASES):
        items = accounting.download(session, caller, patient_id=res_id, query=query)
        note.entities = [f"AuditEvent/{i.entry.id}" for i in items] or ["AuditEvent"]
        return Response(
            "\ufeff" + csv_text(ctx.locale, items, zone),  # the BOM: spreadsheets read UTF-8
            media_type=f"{CSV}; charset=utf-8; header=present",
            headers={"Content-Disposition": f'attachment; filename="{_filename(res_id)}"'},
        )
    found = accounting.accounting(session, caller, patient_id=res_id, query=query)
    note.entities = [f"AuditEvent/{i.entry.id}" for i in found.items] or ["AuditEvent"]
    fhir_base = get_settings().fhir_base_url
    page = Page(
        base=f"{fhir_base}/Patient/{res_id}/{OPERATION}",
        params=query.used,
        offset=0,
        count=query.count,
        total=found.total,
        returned=len(found.items),
        cursors=Cursors(query.page_token, found.next_token, found.previous_token),
    )
    events = [
        disclosure_event(i, locale=ctx.locale, zone=zone, fhir_base=fhir_base) for i in found.items
    ]
    return FHIRResponse(searchset(events, fhir_base=fhir_base, page=page))


@router.get(f"/OperationDefinition/{OPERATION_ID}", summary="The $disclosures OperationDefinition")
def definition(ctx: ContextDep) -> FHIRResponse:
    ctx.note("read", "R", entities=[f"OperationDefinition/{OPERATION_ID}"])
    return FHIRResponse(operation_definition())
