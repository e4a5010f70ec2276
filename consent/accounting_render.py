"""The accounting of disclosures as people read it: each disclosure as an R4 AuditEvent
(the audit trail's IHE BALP shape) with a narrative in the reader's language, and the same
list as a CSV file to download. Pure: no I/O.

What the person is shown of a disclosure: when (on the border's clock, PUENTE_TIMEZONE),
who (the practitioner's reference and name, their hospital and its country), what (their
own records only, each with the kind of record in words), how (the interaction as a verb),
why (the purpose of use) and whether it was break-the-glass. Not shown: the recipient's
network address, account id and request id, which serve the hospitals' investigations
(AuditEvent for consent officers), not the patient.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time

from consent.accounting import Disclosure
from puente.audit.models import AuditEntry
from puente.audit.render import ACT_REASON
from puente.audit.render import audit_event as render_event
from translation.i18n import N_, gettext

XHTML = "http://www.w3.org/1999/xhtml"

# The audit row's subtype (the request's first interaction) -> what the person reads.
ACTIONS = {
    "read": N_("accounting.action.viewed"),
    "vread": N_("accounting.action.viewed"),
    "search": N_("accounting.action.searched"),
    "search-type": N_("accounting.action.searched"),
    "search-system": N_("accounting.action.searched"),
    "history": N_("accounting.action.history"),
    "history-instance": N_("accounting.action.history"),
    "history-type": N_("accounting.action.history"),
    "history-system": N_("accounting.action.history"),
    "everything": N_("accounting.action.everything"),
    "export": N_("accounting.action.exported"),
    "match": N_("accounting.action.matched"),
    "ihe-pix": N_("accounting.action.matched"),
}
ACCESSED = N_("accounting.action.accessed")

RECORD_KINDS = {
    "Patient": N_("accounting.kind.patient"),
    "Encounter": N_("accounting.kind.encounter"),
    "Observation": N_("accounting.kind.observation"),
    "Condition": N_("accounting.kind.condition"),
    "AllergyIntolerance": N_("accounting.kind.allergy_intolerance"),
    "MedicationRequest": N_("accounting.kind.medication_request"),
    "MedicationStatement": N_("accounting.kind.medication_statement"),
    "Immunization": N_("accounting.kind.immunization"),
    "Procedure": N_("accounting.kind.procedure"),
    "DiagnosticReport": N_("accounting.kind.diagnostic_report"),
    "DocumentReference": N_("accounting.kind.document_reference"),
    "Consent": N_("accounting.kind.consent"),
    "Provenance": N_("accounting.kind.provenance"),
}

PURPOSES = {
    "TREAT": N_("accounting.purpose.treat"),
    "ETREAT": N_("accounting.purpose.etreat"),
    "HPAYMT": N_("accounting.purpose.hpaymt"),
    "HOPERAT": N_("accounting.purpose.hoperat"),
    "PUBHLTH": N_("accounting.purpose.pubhlth"),
    "HRESCH": N_("accounting.purpose.hresch"),
    "PATRQT": N_("accounting.purpose.patrqt"),
}

CSV_COLUMNS = (
    N_("accounting.csv.when"),
    N_("accounting.csv.when_utc"),
    N_("accounting.csv.who"),
    N_("accounting.csv.who_reference"),
    N_("accounting.csv.hospital"),
    N_("accounting.csv.country"),
    N_("accounting.csv.action"),
    N_("accounting.csv.records"),
    N_("accounting.csv.kinds"),
    N_("accounting.csv.purpose"),
    N_("accounting.csv.break_the_glass"),
    N_("accounting.csv.event"),
)
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# Injection"): such cells are written with a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def action(locale: str, subtype: str) -> str:
    return gettext(locale, ACTIONS.get(subtype, ACCESSED))


def record_kind(locale: str, reference: str) -> str:
    resource_type = reference.split("/", 1)[0]
    key = RECORD_KINDS.get(resource_type)
    return gettext(locale, key) if key else resource_type


def purpose(locale: str, code: str | None) -> str:
    key = PURPOSES.get(code or "")
    return gettext(locale, key) if key else (code or "")


def country(locale: str, code: str | None) -> str:
    if not code:
        return ""
    names = Locale.parse(locale).territories
    return str(names.get(code.upper(), code))


def when(locale: str, instant: dt.datetime, zone: ZoneInfo) -> str:
    """`November 24, 2026, 9:05 AM (Mountain Standard Time)` in the border's clock."""
    local = instant.astimezone(zone)
    day = format_date(local, format="long", locale=locale)
    time = format_time(local, format="short", locale=locale)
    zone_name = format_datetime(local, "zzzz", locale=locale)
    return f"{day}, {time} ({zone_name})"


def who(locale: str, item: Disclosure) -> str:
    if item.practitioner:
        return item.practitioner
    if item.entry.fhir_user:
        return item.entry.fhir_user
    if item.entry.agent_role == "clinician":
        return gettext(locale, N_("accounting.who.clinician"))
    return gettext(locale, N_("accounting.who.someone"))


def records(locale: str, item: Disclosure) -> str:
    if not item.records:
        return gettext(locale, N_("accounting.your_records"))
    return ", ".join(f"{record_kind(locale, r)} {r.split('/', 1)[-1]}" for r in item.records)


def narrative(locale: str, item: Disclosure, zone: ZoneInfo) -> str:
    """One sentence (two after a break-the-glass) saying who saw what, when and why."""
    entry = item.entry
    text = gettext(
        locale,
        N_("accounting.narrative"),
        when=when(locale, entry.recorded_at, zone),
        who=who(locale, item),
        hospital=item.hospital,
        country=country(locale, entry.country),
        action=action(locale, entry.subtype),
        records=records(locale, item),
        purpose=purpose(locale, entry.purpose_of_use),
    )
    if item.break_the_glass:
        text = f"{text} {gettext(locale, N_('accounting.narrative_btg'))}"
    return text


def _redacted(item: Disclosure) -> AuditEntry:
    """A transient copy of the row holding only what the person is shown (never added to
    a session: the trail is append-only)."""
    entry = item.entry
    return AuditEntry(
        id=entry.id,
        recorded_at=entry.recorded_at,
        request_id=None,
        event_type=entry.event_type,
        subtype=entry.subtype,
        action=entry.action,
        outcome=entry.outcome,
        outcome_detail=entry.outcome_detail,
        agent=None,
        agent_role=entry.agent_role,
        fhir_user=entry.fhir_user,
        org_code=entry.org_code,
        country=entry.country,
        purpose_of_use=entry.purpose_of_use,
        source_ip=None,
        entities=list(item.records),
        patients=list(item.patients),
    )


def disclosure_event(
    item: Disclosure, *, locale: str, zone: ZoneInfo, fhir_base: str
) -> dict[str, Any]:
    """The disclosure as an AuditEvent: the trail's BALP shape, the names added as
    `display`, the purpose in words, `BTG` beside it after a break-the-glass, and the
    narrative (escaped XHTML) in the reader's language."""
    event = render_event(_redacted(item), fhir_base=fhir_base)
    agents = event["agent"]
    if item.practitioner and "who" in agents[0]:
        agents[0]["who"]["display"] = item.practitioner
    for agent in agents[1:]:
        if agent.get("who", {}).get("reference") == f"Organization/{item.entry.org_code}":
            agent["who"]["display"] = item.hospital
    codings = []
    if item.entry.purpose_of_use:
        codings.append({"system": ACT_REASON, "code": item.entry.purpose_of_use})
    if item.break_the_glass:
        codings.append({"system": ACT_REASON, "code": "BTG", "display": "break the glass"})
    if codings:
        event["purposeOfEvent"] = [
            {"coding": codings, "text": purpose(locale, item.entry.purpose_of_use)}
        ]
    div = html.escape(narrative(locale, item, zone), quote=False)
    event["text"] = {"status": "generated", "div": f'<div xmlns="{XHTML}"><p>{div}</p></div>'}
    return event


def _safe(cell: str) -> str:
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def csv_text(locale: str, items: Sequence[Disclosure], zone: ZoneInfo) -> str:
    """The accounting as CSV (RFC 4180, a header row), headers and values in `locale`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([gettext(locale, key) for key in CSV_COLUMNS])
    yes, no = gettext(locale, N_("accounting.yes")), gettext(locale, N_("accounting.no"))
    for item in items:
        entry = item.entry
        row = [
            when(locale, entry.recorded_at, zone),
            entry.recorded_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
            who(locale, item),
            entry.fhir_user or "",
            item.hospital,
            country(locale, entry.country),
            action(locale, entry.subtype),
            "; ".join(item.records),
            "; ".join(dict.fromkeys(record_kind(locale, r) for r in item.records)),
            purpose(locale, entry.purpose_of_use),
            yes if item.break_the_glass else no,
            f"AuditEvent/{entry.id}",
        ]
        writer.writerow([_safe(cell) for cell in row])
    return out.getvalue()
