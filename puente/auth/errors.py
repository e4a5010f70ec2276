"""Errors of authentication and account administration.

The token endpoint answers `OAuthError`s as RFC 6749 section 5.2 JSON (`error`,
`error_description`), never as OperationOutcome; the sign-in page renders the sign-in
errors as HTML. Each still carries a catalog key, so the description is in the caller's
language, and never echoes a secret or an assertion.
"""

from __future__ import annotations

from typing import Any, ClassVar

from puente.errors import PuenteError
from translation.i18n import N_


class OAuthError(PuenteError):
    """An RFC 6749 error code with a localized description."""

    status_code = 400
    error: ClassVar[str] = "invalid_request"
    message_key = N_("auth.request_invalid")


class InvalidRequest(OAuthError):
    error = "invalid_request"
    message_key = N_("auth.request_invalid")


class InvalidClient(OAuthError):
    error = "invalid_client"
    message_key = N_("auth.client_authentication_failed")
    issue_code = "login"

    def __init__(self, message_key: str | None = None, *, basic: bool = False, **params: Any):
        # RFC 6749 section 5.2: a client that tried HTTP Basic gets 401 and a challenge.
        super().__init__(
            message_key,
            headers={"WWW-Authenticate": 'Basic realm="puente"'} if basic else None,
            **params,
        )
        self.basic = basic


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    message_key = N_("auth.code_invalid")


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    message_key = N_("auth.grant_type_unsupported")


class InvalidScope(OAuthError):
    error = "invalid_scope"
    message_key = N_("auth.scope_invalid")


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"
    message_key = N_("auth.response_type_unsupported")


class UnknownApp(PuenteError):
    """The authorization request cannot be answered by redirect: the client is unknown or
    the redirect_uri is not registered (RFC 6749 section 4.1.2.1 forbids redirecting)."""

    status_code = 400
    message_key = N_("auth.app_unknown")


class SignInFailed(PuenteError):
    status_code = 401
    issue_code = "login"
    message_key = N_("auth.sign_in_failed")


class SignInLocked(PuenteError):
    status_code = 429
    issue_code = "throttled"
    message_key = N_("auth.sign_in_locked")
