"""One base for every domain error: an HTTP status, a FHIR issue code and a catalog key.

One handler (puente.fhir.handlers) renders them as OperationOutcome in the caller's
language. Messages never carry patient data: parameters are element paths, ids, codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from translation.i18n import N_


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: what went wrong, where (FHIRPath), in catalog words."""

    message_key: str
    params: dict[str, Any] = field(default_factory=dict)
    code: str = "invalid"
    severity: str = "error"
    expression: tuple[str, ...] = ()
    # Codings for `details` beside the text (e.g. v3-ActCode `BTG`).
    coding: tuple[tuple[str, str], ...] = ()


class PuenteError(Exception):
    status_code: ClassVar[int] = 400
    issue_code: ClassVar[str] = "invalid"
    message_key: ClassVar[str] = N_("error.invalid")

    def __init__(
        self,
        message_key: str | None = None,
        *,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> None:
        key = message_key or self.message_key
        super().__init__(key)
        self.issues = issues or [Issue(key, params, code=self.issue_code)]
        self.headers = headers or {}


class InvalidRequest(PuenteError):
    status_code = 400
    issue_code = "invalid"
    message_key = N_("error.invalid")


class InvalidResource(PuenteError):
    status_code = 400
    issue_code = "structure"
    message_key = N_("error.invalid_resource")


class BusinessRuleViolation(PuenteError):
    status_code = 422
    issue_code = "business-rule"
    message_key = N_("error.business_rule")


class Unauthenticated(PuenteError):
    status_code = 401
    issue_code = "login"
    message_key = N_("error.unauthenticated")

    def __init__(self, message_key: str | None = None, **params: Any) -> None:
        super().__init__(
            message_key, headers={"WWW-Authenticate": 'Bearer realm="puente"'}, **params
        )


class Forbidden(PuenteError):
    status_code = 403
    issue_code = "forbidden"
    message_key = N_("error.forbidden")


class NotFound(PuenteError):
    status_code = 404
    issue_code = "not-found"
    message_key = N_("error.not_found")


class Gone(PuenteError):
    status_code = 410
    issue_code = "deleted"
    message_key = N_("error.gone")


class MethodNotAllowed(PuenteError):
    status_code = 405
    issue_code = "not-supported"
    message_key = N_("error.method_not_allowed")


class NotAcceptable(PuenteError):
    status_code = 406
    issue_code = "not-supported"
    message_key = N_("error.not_acceptable")


class Conflict(PuenteError):
    status_code = 409
    issue_code = "conflict"
    message_key = N_("error.conflict")


class PreconditionFailed(PuenteError):
    status_code = 412
    issue_code = "conflict"
    message_key = N_("error.precondition_failed")


class UnsupportedMediaType(PuenteError):
    status_code = 415
    issue_code = "not-supported"
    message_key = N_("error.unsupported_media_type")


class TooManyRequests(PuenteError):
    status_code = 429
    issue_code = "throttled"
    message_key = N_("error.too_many_requests")


class Transient(PuenteError):
    """The database broke a deadlock or a serialization conflict with another request by
    aborting this one: nothing of it was stored, and sending it again will succeed."""

    status_code = 503
    issue_code = "transient"
    message_key = N_("error.transient_conflict")
    retry_after_seconds = 1

    def __init__(self, message_key: str | None = None, **params: Any) -> None:
        super().__init__(
            message_key, headers={"Retry-After": str(self.retry_after_seconds)}, **params
        )
