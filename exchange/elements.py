"""A validated resource walked along its R4B model: each element with its model field.

The walk knows each element's datatype from the model (a Period is a Period wherever it
sits, an extension's `valuePeriod` included) and what the model's metadata says of it (a
`code` element's generated code list), so checks over the content need no table of paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel

_MODEL_NAME = re.compile(r"(\w+)Type\b")


@dataclass(frozen=True)
class Field:
    enum_values: tuple[str, ...] | None  # a `code` element's generated code list
    model: type[BaseModel] | None  # the element's datatype or backbone, if complex


class Node:
    """A complex element met on the walk: its JSON, its model, and where it sits (its
    FHIRPath is built only when asked for: most nodes pass every check)."""

    __slots__ = ("model", "parent", "step", "value")

    def __init__(
        self, value: dict[str, Any], model: type[BaseModel], parent: Node | None, step: str
    ) -> None:
        self.value = value
        self.model = model
        self.parent = parent
        self.step = step

    @property
    def expression(self) -> str:
        steps = []
        node: Node | None = self
        while node is not None:
            steps.append(node.step)
            node = node.parent
        return ".".join(reversed(steps))


@cache
def model_named(name: str) -> type[BaseModel] | None:
    try:
        model: type[BaseModel] = get_fhir_model_class(name)
    except (KeyError, ValueError):
        return None
    return model


@cache
def fields_of(model: type[BaseModel]) -> dict[str, Field]:
    """A model's elements by their JSON names, read once from the model's metadata."""
    fields: dict[str, Field] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        values = extra.get("enum_values")
        enum_values = tuple(str(v) for v in values) if isinstance(values, list) else None
        child = None
        for found in _MODEL_NAME.findall(str(info.annotation)):
            child = model_named(found)
            if child is not None:
                break
        if enum_values is not None or child is not None:
            fields[info.alias or name] = Field(enum_values, child)
    return fields


def models_under(names: list[str]) -> list[type[BaseModel]]:
    """The models of the named resource types and of every element they may contain."""
    seen: dict[type[BaseModel], None] = {}
    pending = [m for m in (model_named(n) for n in names) if m is not None]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen[model] = None
        pending.extend(f.model for f in fields_of(model).values() if f.model is not None)
    return list(seen)


def walk(resource: dict[str, Any]) -> list[tuple[Node, str, Field]]:
    """Every element of a validated resource that has a code list or a complex type, with
    the node holding it, in document order; contained resources as their own type.

    A loop over a stack rather than nested generators: a resource is walked on every
    write, and each level of `yield from` costs every element below it."""
    found: list[tuple[Node, str, Field]] = []
    model = model_named(str(resource.get("resourceType")))
    if model is None:
        return found
    stack = [Node(resource, model, None, str(resource["resourceType"]))]
    while stack:
        node = stack.pop()
        fields = fields_of(node.model)
        children: list[Node] = []
        for key, value in node.value.items():
            if key == "contained" and isinstance(value, list):
                for index, item in enumerate(value):
                    inner = (
                        model_named(str(item.get("resourceType")))
                        if isinstance(item, dict)
                        else None
                    )
                    if inner is not None:
                        children.append(Node(item, inner, node, f"contained[{index}]"))
                continue
            field = fields.get(key)
            if field is None:
                continue
            found.append((node, key, field))
            if field.model is None:
                continue
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, dict):
                        children.append(Node(item, field.model, node, f"{key}[{index}]"))
            elif isinstance(value, dict):
                children.append(Node(value, field.model, node, key))
        stack.extend(reversed(children))
    return found
