"""Consent domain errors."""

from __future__ import annotations

from puente.errors import BusinessRuleViolation, Conflict, Forbidden, InvalidRequest, NotFound
from translation.i18n import N_


class InvalidPolicy(ValueError):
    """A jurisdiction policy file that cannot be used; raised at start-up, for operators.

    The message names the file and each offending setting; a policy file holds no PHI.
    """


class InvalidConsent(BusinessRuleViolation):
    """A valid FHIR Consent that breaks Puente's rules (422, one issue per rule)."""

    message_key = N_("consent.invalid")


class BreakGlassRoleForbidden(Forbidden):
    """Only the policy's break-the-glass roles (clinicians) may break the glass."""

    message_key = N_("error.btg_role_forbidden")


class BreakGlassParameterInvalid(InvalidRequest):
    """The operation's body is not the Parameters it takes."""

    message_key = N_("error.btg_parameter_invalid")


class BreakGlassReasonInvalid(InvalidRequest):
    message_key = N_("error.btg_reason_invalid")


class BreakGlassMinutesInvalid(InvalidRequest):
    message_key = N_("error.btg_minutes_invalid")


class ReviewOfficerOnly(Forbidden):
    """The review queue belongs to consent officers."""

    message_key = N_("error.btg_officer_only")


class GrantNotFound(NotFound):
    """No such grant in this officer's queue (another hospital's is answered the same)."""

    message_key = N_("error.btg_grant_not_found")


class ReviewClosed(Conflict):
    message_key = N_("error.btg_review_closed")


class CommentInvalid(InvalidRequest):
    message_key = N_("error.btg_comment_invalid")


class DisclosuresParameterInvalid(InvalidRequest):
    """`$disclosures` takes start, end, _count, _page_token and _format, each once."""

    message_key = N_("error.disclosures_parameter_invalid")


class DisclosuresRangeInvalid(InvalidRequest):
    message_key = N_("error.disclosures_range_invalid")
