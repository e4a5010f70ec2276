"""The master patient index's errors: each a status, a FHIR issue code and a catalog key."""

from __future__ import annotations

from puente.errors import Conflict, Forbidden, InvalidRequest, NotFound
from translation.i18n import N_


class ModelNotFound(NotFound):
    message_key = N_("error.mpi_model_not_found")


class StewardOnly(Forbidden):
    """The review queue and hand-made links belong to consent officers (data stewards)."""

    message_key = N_("error.mpi_steward_only")


class MatchRoleForbidden(Forbidden):
    message_key = N_("error.mpi_match_role_forbidden")


class LinkNotFound(NotFound):
    message_key = N_("error.mpi_link_not_found")


class NotPending(Conflict):
    message_key = N_("error.mpi_link_not_pending")


class SameSystem(InvalidRequest):
    message_key = N_("error.mpi_same_system")


class BadParameter(InvalidRequest):
    message_key = N_("error.mpi_parameter_invalid")


class SourceDomainUnknown(InvalidRequest):
    """IHE ITI-83 2:3.83.4.1.3: the sourceIdentifier's assigning authority is not a
    registered identifier system: 400, `code-invalid`."""

    issue_code = "code-invalid"
    message_key = N_("error.mpi_source_domain_unknown")


class TargetSystemUnknown(Forbidden):
    """IHE ITI-83 2:3.83.4.1.3: "If the Patient Identifier Cross-reference Manager does not
    recognize the targetSystem, it returns HTTP 403 Forbidden", issue `code-invalid`."""

    issue_code = "code-invalid"
    message_key = N_("error.mpi_target_system_unknown")
