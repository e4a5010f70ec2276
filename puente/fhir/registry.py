"""What the server serves, declared by each domain; the CapabilityStatement is built from it."""

from __future__ import annotations

from dataclasses import dataclass, field

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
