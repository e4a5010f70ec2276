"""The decision engine: may this caller see this record? A pure function, no I/O.

`decide()` takes who asks (`Requester`), what the record is (`RecordFacts`), the
patient's Consents compiled once each (`ConsentRules`, from `consent.parse`) and the
jurisdiction `Policy`, and answers with a `Decision` naming the rule that decided.

The rules, in order (DOMAIN.md "Law and policy", ARCHITECTURE.md "Roles"):
1. directory types (Organization, Practitioner...) are not patient data: visible;
2. analysts and admins never see patient-level data;
3. a patient sees their own records on both sides, and nothing else;
4. a hospital's own records are visible to its own people with the right role;
5. another hospital's records only to the roles the policy allows, then:
   break-the-glass opens non-Part-2 records (Part 2 only under the 42 CFR 2.51 rule);
   the purpose must be one the policy lets records leave for; a deny in any active
   Consent wins; a permit needs every sensitive label named by the deciding permit
   provision or its ancestors and, for Part 2, the recipient hospital named there
   (42 CFR 2.31), and carries the 2.32 notice with a summary of the Consent;
   without a Consent, only the policy's same-country purposes, if any.

How a Consent reads (R4, 2.38.6): the root provision's `type` (else `policyRule`:
OPTIN permits, OPTOUT denies) is the base; the root's conditions say when the Consent
applies at all; each nested provision is an exception to its parent, and the deepest
provision matching the request decides (at the same depth, deny wins).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from consent.codes import PART2, Label
from consent.policy import Policy
from translation.i18n import N_


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """An active break-the-glass grant of this clinician for one patient."""

    patient: str  # the Patient id the grant was made for
    expires: dt.datetime  # aware; the grant opens nothing from this instant on


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: built once per request from the token (`puente.auth.Caller`)."""

    role: str  # a puente.auth.scopes.Role value
    system: str | None  # the hospital system code (`hgcj`); None for consortium roles
    organization: str | None  # `Organization/hgcj`
    country: str | None  # MX | US
    country_organization: str | None  # the hospital's `partOf`: `Organization/mx`
    purpose: str  # purpose of use (v3-ActReason), `TREAT` by default
    patient: str | None = None  # for role `patient`: the Patient id the person is
    break_glass: tuple[BreakGlass, ...] = ()  # grants not yet expired when loaded


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the engine needs to know about one stored resource."""

    resource_type: str
    resource_id: str
    owner: str  # the hospital system that wrote it, or `puente`
    owner_country: str | None
    owner_organization: str | None  # `Organization/<owner>`
    owner_country_organization: str | None  # its `partOf`: `Organization/mx`
    # The Patient the record is about and every Patient record the MPI links to it (so
    # that Consents, grants and the patient's own access follow the person across
    # hospitals); empty for records about no patient.
    patients: frozenset[str]
    labels: frozenset[Label] = frozenset()
    # The clinical time the record covers (effective, onset, period), for `dataPeriod`.
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


@dataclass(frozen=True, slots=True)
class ConsentSummary:
    """What 42 CFR 2.32 asks to accompany a Part 2 disclosure: a summary of the consent."""

    consent: str  # `Consent/<id>`
    date: str | None  # Consent.dateTime as written
    recipients: tuple[str, ...]  # Organization references named as recipients
    purposes: tuple[str, ...]
    end: str | None  # the root provision's period end as written

    def params(self) -> dict[str, str]:
        """Catalog parameters of the summary message."""
        return {
            "consent": self.consent,
            "date": self.date or "-",
            "recipients": ", ".join(self.recipients) or "-",
            "purposes": ", ".join(self.purposes) or "-",
            "end": self.end or "-",
        }


@dataclass(frozen=True, slots=True)
class Obligation:
    """Something that must travel with a disclosed record."""

    code: str  # `redisclosure-notice` | `consent-summary` | `break-the-glass-notice`
    message_key: str
    summary: ConsentSummary | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    permit: bool
    rule: str  # stable code of the rule that decided, e.g. `consent-deny`
    message_key: str  # catalog key saying it in words
    consent: str | None = None  # `Consent/<id>` that decided, if one did
    provision: str | None = None  # FHIRPath of the provision that decided
    obligations: tuple[Obligation, ...] = ()
    # Denied, but break-the-glass by this caller would open it: the gate adds its one
    # `suppressed`/`BTG` OperationOutcome entry (never saying which record).
    btg_possible: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Provision:
    """One compiled provision: None means the element is absent (no condition)."""

    path: str  # FHIRPath: `Consent.provision.provision[1]`
    depth: int  # 0 for the root
    permit: bool
    decision: Decision  # what this provision answers when it decides (built once)
    start: dt.datetime | None = None  # provision.period
    end: dt.datetime | None = None
    recipients: frozenset[str] | None = None  # actor references with a recipient role
    sources: frozenset[str] | None = None  # actor references with the custodian role
    purposes: frozenset[str] | None = None
    classes: frozenset[str] | None = None  # resource types
    labels: frozenset[Label] | None = None  # securityLabel
    instances: frozenset[str] | None = None  # data, meaning `instance`: `Type/id`
    authors: frozenset[str] | None = None  # data, meaning `authoredby`: Organizations
    data_start: dt.datetime | None = None  # dataPeriod
    data_end: dt.datetime | None = None
    children: tuple[Provision, ...] = ()
    # Compiled from the ancestors: the security labels and the recipients named on the way
    # down here. A nested provision applies only within its parent, so a permit under a
    # `deny PSY` is explicitly about PSY records; 42 CFR 2.31 asks the recipient "named".
    named_labels: frozenset[Label] = frozenset()
    named_recipients: frozenset[str] = frozenset()
    # Who may disclose, named on the way here or as Consent.organization: custodian actors
    # and `authoredby` data (42 CFR 2.31(a)(2) names the discloser too).
    named_sources: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, eq=False)
class ConsentRules:
    """One Consent, compiled once (consent.parse.compile_rules) and reused per request."""

    consent: str  # `Consent/<id>`
    patient: str  # the Patient id it is about
    active: bool  # status `active`; anything else decides nothing
    root: Provision
    summary: ConsentSummary


def provision_decision(permit: bool, consent: str, path: str) -> Decision:
    """The answer of a provision that decides (consent.parse builds one per provision)."""
    if permit:
        return Decision(True, "consent-permit", _PERMIT_KEY, consent, path)
    return Decision(False, "consent-deny", _DENY_KEY, consent, path)


_DIRECTORY = Decision(True, "directory", N_("consent.rule.directory"))
_NO_PATIENT_DATA = Decision(False, "no-patient-data", N_("consent.rule.no_patient_data"))
_PATIENT_OWN = Decision(True, "patient-own", N_("consent.rule.patient_own"))
_PATIENT_OTHER = Decision(False, "patient-other", N_("consent.rule.patient_other"))
_OWN_SYSTEM = Decision(True, "own-system", N_("consent.rule.own_system"))
_ROLE_OWN_ONLY = Decision(False, "role-own-only", N_("consent.rule.role_own_only"))
_PURPOSE = Decision(False, "purpose-not-allowed", N_("consent.rule.purpose_not_allowed"))
_NO_CONSENT = Decision(False, "no-consent", N_("consent.rule.no_consent"))
_DOMESTIC = Decision(True, "domestic-purpose", N_("consent.rule.domestic_purpose"))
_LABEL_RULE = ("label-not-permitted", N_("consent.rule.label_not_permitted"))
_PART2_RULE = ("part2-recipient-not-named", N_("consent.rule.part2_recipient_not_named"))
_PART2_SOURCE_RULE = ("part2-source-not-named", N_("consent.rule.part2_source_not_named"))
_DENY_KEY = N_("consent.rule.consent_deny")
_PERMIT_KEY = N_("consent.rule.consent_permit")


def _matches(p: Provision, req: Requester, rec: RecordFacts, now: dt.datetime) -> bool:
    if p.start is not None and now < p.start:
        return False
    if p.end is not None and now >= p.end:
        return False
    if p.recipients is not None and not (
        req.organization in p.recipients or req.country_organization in p.recipients
    ):
        return False
    if p.sources is not None and not (
        rec.owner_organization in p.sources or rec.owner_country_organization in p.sources
    ):
        return False
    if p.purposes is not None and req.purpose not in p.purposes:
        return False
    if p.classes is not None and rec.resource_type not in p.classes:
        return False
    if p.labels is not None and p.labels.isdisjoint(rec.labels):
        return False
    if (p.instances is not None or p.authors is not None) and not _data_matches(p, rec):
        return False
    if p.data_start is not None or p.data_end is not None:
        return _in_data_period(p, rec)
    return True


def _data_matches(p: Provision, rec: RecordFacts) -> bool:
    """`data`: this very record (`instance`), or any record of a hospital or of all the
    hospitals of a country (`authoredby`)."""
    if p.instances is not None and rec.reference in p.instances:
        return True
    return p.authors is not None and (
        rec.owner_organization in p.authors or rec.owner_country_organization in p.authors
    )


def _in_data_period(p: Provision, rec: RecordFacts) -> bool:
    """Whether the record's time overlaps `dataPeriod`. A record of unknown time is
    covered by a deny and not by a permit: doubt never discloses."""
    if rec.start is None and rec.end is None:
        return not p.permit
    start = rec.start or rec.end
    end = rec.end or rec.start
    if p.data_end is not None and start is not None and start >= p.data_end:
        return False
    return not (p.data_start is not None and end is not None and end < p.data_start)


def _deepest(p: Provision, req: Requester, rec: RecordFacts, now: dt.datetime) -> Provision:
    """The deepest provision under `p` (which matched) that matches; deny wins a tie."""
    best = p
    for child in p.children:
        if _matches(child, req, rec, now):
            found = _deepest(child, req, rec, now) if child.children else child
            if found.depth > best.depth or (
                found.depth == best.depth and best.permit and not found.permit
            ):
                best = found
    return best


def _evaluate(
    rules: ConsentRules,
    req: Requester,
    rec: RecordFacts,
    sensitive: frozenset[Label],
    part2: bool,
    policy: Policy,
    now: dt.datetime,
) -> Decision | None:
    """This Consent's answer, or None when it does not apply to the request."""
    if not rules.active or rules.patient not in rec.patients:
        return None
    if not _matches(rules.root, req, rec, now):
        return None
    decider = _deepest(rules.root, req, rec, now) if rules.root.children else rules.root
    if not decider.permit:
        return decider.decision
    if sensitive and not sensitive <= decider.named_labels:
        return Decision(False, *_LABEL_RULE, rules.consent, decider.path)
    if part2:
        return _part2_permit(rules, decider, req, rec, policy)
    return decider.decision


def _part2_permit(
    rules: ConsentRules, decider: Provision, req: Requester, rec: RecordFacts, policy: Policy
) -> Decision:
    """42 CFR 2.31: a Part 2 record goes only where the consent names the recipient (the
    hospital, not a whole country, by default) and the program disclosing it; 2.32: with
    the notice and a summary of the consent."""
    named = decider.named_recipients
    if not (
        req.organization in named
        or (not policy.part2_named_hospital_required and req.country_organization in named)
    ):
        return Decision(False, *_PART2_RULE, rules.consent, decider.path)
    if policy.part2_named_source_required and rec.owner_organization not in decider.named_sources:
        return Decision(False, *_PART2_SOURCE_RULE, rules.consent, decider.path)
    return Decision(
        True,
        "consent-permit",
        _PERMIT_KEY,
        rules.consent,
        decider.path,
        _part2_obligations(policy, rules.summary),
    )


def _part2_obligations(policy: Policy, summary: ConsentSummary | None) -> tuple[Obligation, ...]:
    notice = Obligation("redisclosure-notice", policy.part2_notice_key)
    if summary is None:
        return (notice,)
    return notice, Obligation("consent-summary", policy.part2_summary_key, summary)


def _active_grant(req: Requester, rec: RecordFacts, now: dt.datetime) -> bool:
    return any(g.expires > now and g.patient in rec.patients for g in req.break_glass)


def _break_glass(part2: bool, policy: Policy) -> Decision | None:
    """Break-the-glass opens non-Part-2 records; Part 2 only under the 2.51 rule."""
    notice = (Obligation("break-the-glass-notice", policy.btg_notice_key),)
    if not part2:
        return Decision(
            True, "break-the-glass", N_("consent.rule.break_the_glass"), None, None, notice
        )
    if policy.part2_emergency_rule:
        # 42 CFR 2.51: a bona fide medical emergency; the record still carries the 2.32
        # notice (redisclosure stays prohibited).
        return Decision(
            True,
            "part2-emergency",
            N_("consent.rule.part2_emergency"),
            None,
            None,
            notice + _part2_obligations(policy, None),
        )
    return None


def decide(
    request: Requester,
    record: RecordFacts,
    consents: Sequence[ConsentRules],
    policy: Policy,
    *,
    now: dt.datetime,
) -> Decision:
    """Permit or deny `request` seeing `record`, and the rule that decided."""
    role = request.role
    if record.resource_type in policy.directory_types:
        return _DIRECTORY
    if role in policy.never_patient_data_roles:
        return _NO_PATIENT_DATA
    if role == "patient":
        if policy.patient_access and request.patient in record.patients:
            return _PATIENT_OWN
        return _PATIENT_OTHER
    if request.system is not None and record.owner == request.system:
        return _OWN_SYSTEM if role in policy.own_record_roles else _ROLE_OWN_ONLY
    if role not in policy.other_record_roles:
        return _ROLE_OWN_ONLY
    labels = record.labels
    part2 = PART2 in labels
    granted = bool(request.break_glass) and _active_grant(request, record, now)
    if granted:
        opened = _break_glass(part2, policy)
        if opened is not None:
            return opened
    decision = _by_consents(request, record, consents, policy, part2, now)
    if decision.permit or granted or role not in policy.btg_roles or not record.patients:
        return decision
    if part2 and not policy.part2_emergency_rule:
        return decision
    return Decision(
        False,
        decision.rule,
        decision.message_key,
        decision.consent,
        decision.provision,
        decision.obligations,
        True,
    )


def _by_consents(
    req: Requester,
    rec: RecordFacts,
    consents: Sequence[ConsentRules],
    policy: Policy,
    part2: bool,
    now: dt.datetime,
) -> Decision:
    if req.purpose not in policy.purposes:
        return _PURPOSE
    labels = rec.labels
    sensitive = labels & policy.sensitive_labels if labels else labels
    permitted: Decision | None = None
    denied: Decision | None = None
    for rules in consents:
        answer = _evaluate(rules, req, rec, sensitive, part2, policy, now)
        if answer is None:
            continue
        if answer.permit:
            if permitted is None:
                permitted = answer
        elif answer.rule == "consent-deny":
            # An explicit deny in any Consent wins over every permit (DOMAIN.md).
            return answer
        elif denied is None:
            denied = answer
    if permitted is not None:
        return permitted
    if denied is not None:
        return denied
    if (
        not sensitive
        and not part2
        and req.country is not None
        and req.country == rec.owner_country
        and req.purpose in policy.domestic_without_consent.get(req.country, ())
    ):
        return _DOMESTIC
    return _NO_CONSENT


def _may_permit(p: Provision, req: Requester) -> bool:
    if p.recipients is not None and not (
        req.organization in p.recipients or req.country_organization in p.recipients
    ):
        return False
    if p.purposes is not None and req.purpose not in p.purposes:
        return False
    return p.permit or any(_may_permit(child, req) for child in p.children)


def may_permit(rules: ConsentRules, request: Requester) -> bool:
    """Whether some record could be disclosed to `request` under this Consent: an active
    Consent with a permitting provision whose recipients and purposes (its own and its
    ancestors') admit the requester. False proves the Consent opens nothing to it; True
    only says `decide` must look (periods, classes, labels and data are not checked)."""
    return rules.active and _may_permit(rules.root, request)
