"""Consent domain errors."""

from __future__ import annotations

from puente.errors import BusinessRuleViolation
from translation.i18n import N_


class InvalidPolicy(ValueError):
    """A jurisdiction policy file that cannot be used; raised at start-up, for operators.

    The message names the file and each offending setting; a policy file holds no PHI.
    """


class InvalidConsent(BusinessRuleViolation):
    """A valid FHIR Consent that breaks Puente's rules (422, one issue per rule)."""

    message_key = N_("consent.invalid")
