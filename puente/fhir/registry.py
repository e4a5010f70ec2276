"""What the server serves, declared by each domain; the CapabilityStatement is built from it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from puente.fhir.search import SearchParam


@dataclass(frozen=True)
class OperationDef:
    name: str  # without the `$`
    definition: str  # canonical URL of its OperationDefinition
    documentation: str = ""


@dataclass
class ResourceCapability:
    type: str
    interactions: tuple[
        str, ...
    ]  # read, vread, update, patch, delete, history-*, create, search-type
    search_params: tuple[SearchParam, ...] = ()
    operations: tuple[OperationDef, ...] = ()
    documentation: str = ""
    versioning: str = "versioned"
    conditional_create: bool = False
    conditional_update: bool = False
    conditional_delete: str = "not-supported"
    search_include: tuple[str, ...] = ()
    search_rev_include: tuple[str, ...] = ()
    profile: str | None = None

    def param(self, name: str) -> SearchParam | None:
        return next((p for p in self.search_params if p.name == name), None)


@dataclass
class Registry:
    resources: dict[str, ResourceCapability] = field(default_factory=dict)
    system_interactions: list[str] = field(default_factory=list)
    system_operations: list[OperationDef] = field(default_factory=list)

    def register(self, capability: ResourceCapability) -> ResourceCapability:
        existing = self.resources.get(capability.type)
        if existing is not None and existing != capability:
            raise ValueError(f"{capability.type} registered twice with different capabilities")
        self.resources[capability.type] = capability
        return capability

    def get(self, resource_type: str) -> ResourceCapability | None:
        return self.resources.get(resource_type)


REGISTRY = Registry()


def operation_url(operation_id: str) -> str:
    """The canonical URL of one of Puente's OperationDefinitions."""
    from puente.settings import get_settings

    return f"{get_settings().fhir_base_url}/OperationDefinition/{operation_id}"


def declare_operation(operation: OperationDef, *resource_types: str, system: bool = False) -> None:
    """Add `operation` to the CapabilityStatement of each type (registered before) and, with
    `system`, to the system's operations; once, however often a module is imported."""
    if system and all(op.name != operation.name for op in REGISTRY.system_operations):
        REGISTRY.system_operations.append(operation)
    for resource_type in resource_types:
        capability = REGISTRY.resources.get(resource_type)
        if capability is None:
            continue
        if all(op.name != operation.name for op in capability.operations):
            REGISTRY.resources[resource_type] = dataclasses.replace(
                capability, operations=(*capability.operations, operation)
            )


def operation_param(
    name: str, use: str, low: int, high: str, kind: str, text: str
) -> dict[str, Any]:
    """One `OperationDefinition.parameter`."""
    return {"name": name, "use": use, "min": low, "max": high, "type": kind, "documentation": text}


def operation_definition(
    operation_id: str,
    *,
    name: str,
    title: str,
    description: str,
    code: str,
    affects_state: bool,
    parameters: list[dict[str, Any]],
    resources: tuple[str, ...] = (),
    system: bool = False,
    on_type: bool = False,
    instance: bool = False,
) -> dict[str, Any]:
    """One of Puente's OperationDefinitions (valid R4), as its URL serves it."""
    definition: dict[str, Any] = {
        "resourceType": "OperationDefinition",
        "id": operation_id,
        "url": operation_url(operation_id),
        "name": name,
        "title": title,
        "status": "active",
        "kind": "operation",
        "publisher": "Puente",
        "description": description,
        "affectsState": affects_state,
        "code": code,
    }
    if resources:
        definition["resource"] = list(resources)
    return {
        **definition,
        "system": system,
        "type": on_type,
        "instance": instance,
        "parameter": parameters,
    }
