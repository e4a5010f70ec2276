"""An audit row as an R4 AuditEvent shaped after IHE BALP (Basic Audit Log Patterns).

Pure: no I/O. Choices, so that readers of the trail know what each element means:
- `type`: `rest` (audit-event-type) with the FHIR restful-interaction as `subtype` for
  REST calls; DICOM 110114 User Authentication with 110122 Login / 110123 Logout for
  sign-ins; DICOM 110113 Security Alert for security administration (accounts, systems,
  break-the-glass review). Anything else keeps Puente's own code under `urn:puente:*`.
- `agent[0]` is who asked (`requestor: true`): `who.reference` is the person's fhirUser
  when there is one, `who.identifier` the client or account id (`urn:puente:agent`),
  `type` DICOM 110153 Source Role ID for hospital systems or `humanuser` for people and
  operators (BALP), `role` the Puente role, `network.address` the source IP. `agent[1]` is the
  caller's hospital Organization; `agent[2]` Puente itself as DICOM 110152 Destination
  Role ID.
- `entity`: each resource touched (`what.reference`, role 4 Domain Resource); each
  patient (role 1 Patient, type 1 Person, as BALP's PatientRead/PatientQuery); a bare
  type (a search that matched nothing) as `type` only, role 24 Query; and the request id
  as BALP's transaction entity: `what.identifier.value` = the X-Request-ID, `type`
  BasicAuditEntityType `XrequestId`.
- `outcome` 0/4/8/12 with `outcomeDesc` the catalog key of the error, never its text.
"""

from __future__ import annotations

from typing import Any

from puente.audit.canonical import utc_instant
from puente.audit.models import AuditEntry

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SECURITY_ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PUENTE_ROLE = "urn:puente:role"
PUENTE_AGENT = "urn:puente:agent"
PUENTE_EVENT_TYPE = "urn:puente:audit-event-type"
PUENTE_SUBTYPE = "urn:puente:audit-subtype"
OBSERVER = "Puente"

# event_type as stored -> the coding of AuditEvent.type
EVENT_TYPES: dict[str, dict[str, str]] = {
    "rest": {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
    "login": {"system": DCM, "code": "110114", "display": "User Authentication"},
    "logout": {"system": DCM, "code": "110114", "display": "User Authentication"},
    "security-admin": {"system": DCM, "code": "110113", "display": "Security Alert"},
}
AUTH_SUBTYPES = {
    "login": {"system": DCM, "code": "110122", "display": "Login"},
    "logout": {"system": DCM, "code": "110123", "display": "Logout"},
}
RESTFUL_CODES = frozenset(
    {
        "read", "vread", "update", "patch", "delete", "history", "history-instance",
        "history-type", "history-system", "create", "search", "search-type",
        "search-system", "capabilities", "transaction", "batch", "operation",
    }
)  # fmt: skip


def event_type_coding(event_type: str) -> dict[str, str]:
    return EVENT_TYPES.get(event_type, {"system": PUENTE_EVENT_TYPE, "code": event_type})


def _subtypes(entry: AuditEntry) -> list[dict[str, str]]:
    codings = []
    if entry.event_type in AUTH_SUBTYPES:
        codings.append(AUTH_SUBTYPES[entry.event_type])
    if entry.event_type == "rest" and entry.subtype in RESTFUL_CODES:
        codings.append(
            {"system": RESTFUL_INTERACTION, "code": entry.subtype, "display": entry.subtype}
        )
    elif not codings or entry.subtype != entry.event_type:
        codings.append({"system": PUENTE_SUBTYPE, "code": entry.subtype})
    return codings


def _requestor(entry: AuditEntry) -> dict[str, Any]:
    # Only hospital systems act as software; operators (CLI) and people signing in act as
    # themselves even when no role is known yet.
    person = entry.agent_role != "system"
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": SECURITY_ROLE_TYPE, "code": "humanuser", "display": "human user"}
                if person
                else {"system": DCM, "code": "110153", "display": "Source Role ID"}
            ]
        },
        "requestor": True,
    }
    who: dict[str, Any] = {}
    if entry.fhir_user:
        who["reference"] = entry.fhir_user
    if entry.agent:
        who["identifier"] = {"system": PUENTE_AGENT, "value": entry.agent}
    if who:
        agent["who"] = who
    if entry.agent and entry.fhir_user:
        agent["altId"] = entry.agent
    if entry.agent_role:
        agent["role"] = [{"coding": [{"system": PUENTE_ROLE, "code": entry.agent_role}]}]
    if entry.source_ip:
        agent["network"] = {"address": entry.source_ip, "type": "2"}  # 2: IP address
    return agent


def _agents(entry: AuditEntry, fhir_base: str) -> list[dict[str, Any]]:
    agents = [_requestor(entry)]
    if entry.org_code:
        agents.append(
            {
                "type": {"coding": [{"system": ROLE_CLASS, "code": "PROV"}]},
                "who": {"reference": f"Organization/{entry.org_code}"},
                "requestor": False,
            }
        )
    agents.append(
        {
            "type": {
                "coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]
            },
            "who": {"display": OBSERVER},
            "requestor": False,
            "network": {"address": fhir_base, "type": "5"},  # 5: URI
        }
    )
    return agents


def _resource_entity(reference: str) -> dict[str, Any]:
    resource_type = reference.split("/", 1)[0]
    entity: dict[str, Any] = {"type": {"system": RESOURCE_TYPES, "code": resource_type}}
    if "/" in reference:
        entity["what"] = {"reference": reference}
        entity["role"] = {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}
    else:
        entity["role"] = {"system": OBJECT_ROLE, "code": "24", "display": "Query"}
    return entity


def _entities(entry: AuditEntry) -> list[dict[str, Any]]:
    patients = list(entry.patients or [])
    entities = [_resource_entity(r) for r in entry.entities or [] if r not in patients]
    entities += [
        {
            "what": {"reference": reference},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        for reference in patients
    ]
    if entry.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": entry.request_id}},
                "type": {"system": BALP_ENTITY_TYPE, "code": "XrequestId"},
            }
        )
    return entities


def audit_event(entry: AuditEntry, *, fhir_base: str) -> dict[str, Any]:
    recorded = utc_instant(entry.recorded_at)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(entry.id),
        "meta": {"lastUpdated": recorded},
        "type": event_type_coding(entry.event_type),
        "subtype": _subtypes(entry),
        "action": entry.action,
        "recorded": recorded,
        "outcome": str(entry.outcome),
    }
    if entry.outcome_detail:
        event["outcomeDesc"] = entry.outcome_detail
    if entry.purpose_of_use:
        event["purposeOfEvent"] = [
            {"coding": [{"system": ACT_REASON, "code": entry.purpose_of_use}]}
        ]
    event["agent"] = _agents(entry, fhir_base)
    event["source"] = {
        "site": OBSERVER,
        "observer": {"display": OBSERVER},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    if entities := _entities(entry):
        event["entity"] = entities
    return event
