"""Break-the-glass (issue 6, item 7): a clinician's emergency access to one patient, the
consent officers' review of it, and the patient's notice. Services flush, never commit.

A clinician breaks the glass for a Patient they can read (their own hospital's record);
the grant names that Patient, and the disclosure gate opens, until the grant expires, the
non-Part-2 records of it and of every Patient record the MPI links to it (the engine's
`RecordFacts.patients`). Each grant is reviewed afterwards by the consent officers of the
clinician's hospital and of every hospital whose records it opened (found through the MPI's
links as they stand at review time). The patient hears about it by email, in their
language, at each address their records carry: who (the hospital, not the person), when,
that the reason is on record, and how to ask for the accounting of disclosures; never the
reason itself or anything clinical.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import case, func, select, true
from sqlalchemy.orm import Session

from consent.errors import (
    BreakGlassMinutesInvalid,
    BreakGlassReasonInvalid,
    BreakGlassRoleForbidden,
    CommentInvalid,
    GrantNotFound,
    ReviewClosed,
    ReviewOfficerOnly,
)
from consent.models import CLOSED, OPEN, BreakGlassComment, BreakGlassGrant
from consent.policy import Policy, active_policy
from exchange import service as exchange
from exchange import store
from exchange.matching import links
from puente.audit import service as audit
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from puente.notify import service as notify
from puente.notify.errors import InvalidRecipient
from puente.settings import get_settings
from translation.i18n import N_, match_locale

REASON_MIN, REASON_MAX = 10, 2000
COMMENT_MAX = 2000
MAX_PAGE = 100
OFFICERS = frozenset({Role.CONSENT_OFFICER})
EVENT_TYPE = "break-the-glass"
NOTICE_KIND = "consent.btg_notice"
NOTICE_SUBJECT = N_("consent.btg_notice.subject")
NOTICE_BODY = N_("consent.btg_notice.body")
# Without a language on the Patient, the language of the country whose hospital holds it.
COUNTRY_LOCALES = {"MX": "es_MX", "US": "en_US"}


def reference(grant_id: str) -> str:
    """How the audit trail names a grant."""
    return f"BreakGlassGrant/{grant_id}"


@dataclasses.dataclass(frozen=True)
class Granted:
    grant: BreakGlassGrant
    patients: tuple[str, ...]  # `Patient/<id>`: the grant's Patient, then the linked records
    notices: int  # messages queued (one per distinct address)


def _reason(text: object) -> str:
    reason = text.strip() if isinstance(text, str) else ""
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise BreakGlassReasonInvalid(min=REASON_MIN, max=REASON_MAX)
    return reason


def _minutes(minutes: int | None, policy: Policy) -> int:
    if minutes is None:
        return policy.btg_duration_minutes
    if not 1 <= minutes <= policy.btg_max_duration_minutes:
        raise BreakGlassMinutesInvalid(max=policy.btg_max_duration_minutes)
    return minutes


def authorize_clinician(caller: Caller, policy: Policy | None = None) -> None:
    """403 for every role the policy does not let break the glass."""
    if caller.role.value not in (policy or active_policy()).btg_roles or not caller.org_code:
        raise BreakGlassRoleForbidden()


def break_glass(
    session: Session,
    caller: Caller,
    *,
    patient_id: str,
    reason: object,
    minutes: int | None,
    now: dt.datetime,
    policy: Policy | None = None,
) -> Granted:
    """Record a grant for `caller` and the Patient `patient_id` and queue the patient's
    notices. 403 for other roles, 400 for a reason or duration out of bounds, 404 exactly
    as a read when the caller cannot read that Patient. The caller audits it."""
    policy = policy or active_policy()
    authorize_clinician(caller, policy)
    text = _reason(reason)
    duration = _minutes(minutes, policy)
    exchange.read(session, caller, resource_type="Patient", res_id=patient_id)
    assert caller.org_code is not None
    # FHIR instants carry milliseconds: the expiry the clinician reads is the stored one.
    now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
    grant = BreakGlassGrant(
        clinician=caller.subject,
        clinician_fhir_user=caller.fhir_user,
        org_code=caller.org_code,
        country=caller.country,
        patient_id=patient_id,
        reason=text,
        purpose=policy.btg_purpose,
        granted_at=now,
        expires_at=now + dt.timedelta(minutes=duration),
        status=OPEN,
    )
    session.add(grant)
    session.flush()
    records = _records(session, patient_id)
    notices = _notify(session, grant, records)
    return Granted(grant, tuple(f"Patient/{row.res_id}" for row in records), notices)


def record_audit(
    session: Session,
    caller: Caller,
    granted: Granted,
    *,
    request_id: str | None = None,
    source_ip: str | None = None,
) -> None:
    """The grant's audit row, for callers outside a request (the demo); the API notes the
    same event through the request's context, so that a refused attempt is recorded too."""
    audit.append(
        session,
        event_type=EVENT_TYPE,
        subtype="grant",
        action="E",
        caller=caller,
        request_id=request_id,
        source_ip=source_ip,
        entities=[reference(granted.grant.id)],
        patients=granted.patients,
    )


def _records(session: Session, patient_id: str) -> list[Any]:
    """The grant's Patient row, then the current rows of the Patients linked to it."""
    row = store.load(session, "Patient", patient_id)
    if row is None or row.content is None:
        return []
    return [row, *links.linked_resources(session, row.pk, visible=true())]


# -- the patient's notice -------------------------------------------------------------


def _emails(content: Mapping[str, Any]) -> list[str]:
    found = []
    for telecom in content.get("telecom") or ():
        if not isinstance(telecom, Mapping) or telecom.get("system") != "email":
            continue
        period = telecom.get("period")
        if isinstance(period, Mapping) and period.get("end"):
            continue  # an address the patient no longer uses
        value = telecom.get("value")
        if isinstance(value, str) and value.strip():
            found.append(value.strip())
    return found


def _language(communication: Any) -> str | None:
    language = communication.get("language") if isinstance(communication, Mapping) else None
    if not isinstance(language, Mapping):
        return None
    for coding in language.get("coding") or ():
        if isinstance(coding, Mapping):
            found = match_locale(coding.get("code"))
            if found:
                return found
    return match_locale(language.get("text"))


def patient_locale(content: Mapping[str, Any], owner_country: str | None) -> str:
    """The catalog a Patient reads: its preferred `communication` language, else its first
    one Puente speaks, else the language of the country of the hospital that holds it."""
    spoken = [c for c in content.get("communication") or () if isinstance(c, Mapping)]
    for communication in sorted(spoken, key=lambda c: c.get("preferred") is not True):
        found = _language(communication)
        if found:
            return found
    return COUNTRY_LOCALES.get(owner_country or "", get_settings().default_locale)


def _hospital_name(session: Session, org_code: str) -> str:
    row = store.load(session, "Organization", org_code)
    name = (row.content or {}).get("name") if row is not None else None
    return name if isinstance(name, str) and name.strip() else org_code


def local_date(instant: dt.datetime, locale: str) -> str:
    """The day of `instant` at the border (PUENTE_TIMEZONE), as `locale` writes it."""
    day = instant.astimezone(ZoneInfo(get_settings().timezone)).date()
    return format_date(day, format="long", locale=locale)


def _notify(session: Session, grant: BreakGlassGrant, records: Sequence[Any]) -> int:
    """One message per distinct address over the grant's Patient and its linked records,
    in the language of the record the address was first found on. A record without an
    address gets none, and an address mail cannot go to is skipped: neither may hold up an
    emergency."""
    hospital = _hospital_name(session, grant.org_code)
    portal = get_settings().base_url.rstrip("/")
    seen: set[str] = set()
    queued = 0
    for row in records:
        content = row.content or {}
        locale = patient_locale(content, row.owner_country)
        for address in _emails(content):
            key = address.lower()
            if key in seen:
                continue
            seen.add(key)
            digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
            try:
                notify.queue(
                    session,
                    idempotency_key=f"btg-notice:{grant.id}:{digest}",
                    kind=NOTICE_KIND,
                    recipient=address,
                    locale=locale,
                    subject_key=NOTICE_SUBJECT,
                    body_key=NOTICE_BODY,
                    params={
                        "hospital": hospital,
                        "date": local_date(grant.granted_at, locale),
                        "portal": portal,
                    },
                )
            except InvalidRecipient:
                continue
            queued += 1
    return queued


# -- the consent officers' review queue -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Review:
    grant: BreakGlassGrant
    patients: tuple[str, ...]  # `Patient/<id>`: the grant's Patient, then linked records
    comments: tuple[BreakGlassComment, ...] = ()


def authorize_officer(caller: Caller) -> str:
    """The officer's hospital system, or 403 for every other role."""
    if caller.role not in OFFICERS or not caller.org_code:
        raise ReviewOfficerOnly()
    return caller.org_code


def officer(caller: Caller) -> str:
    """Who commented or closed, as the MPI's stewards are named."""
    return f"{caller.role.value}:{caller.subject}"[:255]


def _linked(session: Session, patient_ids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Patient id -> (id, owner) of each Patient record the MPI links to it now."""
    rows = store.load_many(session, [("Patient", pid) for pid in dict.fromkeys(patient_ids)])
    by_pk = {row.pk: res_id for (_type, res_id), row in rows.items()}
    found = links.linked_ids(session, list(by_pk), visible=true())
    others = {oid for ids in found.values() for oid in ids}
    owners = {
        res_id: row.owner
        for (_type, res_id), row in store.load_many(
            session, [("Patient", oid) for oid in sorted(others)]
        ).items()
    }
    return {
        by_pk[pk]: [(oid, owners[oid]) for oid in ids if oid in owners] for pk, ids in found.items()
    }


def _patients(
    grant: BreakGlassGrant, linked: Mapping[str, list[tuple[str, str]]]
) -> tuple[str, ...]:
    ids = [grant.patient_id, *(oid for oid, _owner in linked.get(grant.patient_id, ()))]
    return tuple(f"Patient/{pid}" for pid in ids)


def _theirs(
    grant: BreakGlassGrant, system: str, linked: Mapping[str, list[tuple[str, str]]]
) -> bool:
    """The officer's hospital made the grant, or holds a record the grant opened."""
    if grant.org_code == system:
        return True
    return any(owner == system for _oid, owner in linked.get(grant.patient_id, ()))


def reviews(
    session: Session, caller: Caller, *, status: str | None, count: int, offset: int
) -> tuple[list[Review], int]:
    """The officer's grants, open first then newest first; and how many there are.

    Grants are rare (emergencies): every grant of the status asked is read and those of
    another hospital kept when the MPI links their Patient to one of the officer's."""
    system = authorize_officer(caller)
    statement = select(BreakGlassGrant).order_by(
        case((BreakGlassGrant.status == OPEN, 0), else_=1),
        BreakGlassGrant.granted_at.desc(),
        BreakGlassGrant.id,
    )
    if status is not None:
        statement = statement.where(BreakGlassGrant.status == status)
    grants = list(session.scalars(statement))
    linked = _linked(session, (g.patient_id for g in grants))
    mine = [g for g in grants if _theirs(g, system, linked)]
    page = mine[offset : offset + min(count, MAX_PAGE)]
    return [Review(g, _patients(g, linked)) for g in page], len(mine)


def _grant(session: Session, system: str, grant_id: str) -> tuple[BreakGlassGrant, Review]:
    grant = session.get(BreakGlassGrant, grant_id[:36])
    linked = _linked(session, [grant.patient_id]) if grant is not None else {}
    if grant is None or not _theirs(grant, system, linked):
        raise GrantNotFound(id=grant_id[:64])
    comments = session.scalars(
        select(BreakGlassComment)
        .where(BreakGlassComment.grant_id == grant.id)
        .order_by(BreakGlassComment.created_at, BreakGlassComment.id)
    )
    return grant, Review(grant, _patients(grant, linked), tuple(comments))


def review(session: Session, caller: Caller, *, grant_id: str) -> Review:
    """One grant of the officer's queue with its comments, oldest first."""
    return _grant(session, authorize_officer(caller), grant_id)[1]


def _comment_text(text: object, *, required: bool) -> str | None:
    value = text.strip() if isinstance(text, str) else ""
    if not value and not required:
        return None
    if not 1 <= len(value) <= COMMENT_MAX:
        raise CommentInvalid(max=COMMENT_MAX)
    return value


def comment(
    session: Session, caller: Caller, *, grant_id: str, text: object, now: dt.datetime
) -> Review:
    """Add an officer's comment (open or closed reviews alike: a later finding is noted)."""
    system = authorize_officer(caller)
    body = _comment_text(text, required=True)
    assert body is not None
    grant, _ = _grant(session, system, grant_id)
    session.add(
        BreakGlassComment(grant_id=grant.id, author=officer(caller), text=body, created_at=now)
    )
    session.flush()
    return _grant(session, system, grant.id)[1]


def close(
    session: Session, caller: Caller, *, grant_id: str, text: object, now: dt.datetime
) -> Review:
    """Close the review, with an optional last comment; 409 if it is closed already. The
    grant itself runs to its expiry: the review judges an access, it does not revoke it."""
    system = authorize_officer(caller)
    body = _comment_text(text, required=False)
    grant, _ = _grant(session, system, grant_id)
    if grant.status != OPEN:
        raise ReviewClosed(id=grant.id)
    if body is not None:
        session.add(
            BreakGlassComment(grant_id=grant.id, author=officer(caller), text=body, created_at=now)
        )
    grant.status, grant.closed_at, grant.closed_by = CLOSED, now, officer(caller)
    session.flush()
    return _grant(session, system, grant.id)[1]


def counts(session: Session) -> dict[str, int]:
    """Grants per review state (the demo's summary)."""
    rows = session.execute(
        select(BreakGlassGrant.status, func.count()).group_by(BreakGlassGrant.status)
    ).all()
    return {status: int(n) for status, n in rows}
