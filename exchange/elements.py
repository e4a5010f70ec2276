"""A validated resource walked along its R4B model: each element with its model field.

The walk knows each element's datatype from the model (a Period is a Period wherever it
sits, an extension's `valuePeriod` included) and what the model's metadata says of it (a
`code` element's generated code list), so checks over the content need no table of paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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


@dataclass(frozen=True)
class Node:
    """A complex element met on the walk: its FHIRPath, its model's name and its JSON."""

    expression: str
    model: str
    value: dict[str, Any]


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


def walk(resource: dict[str, Any]) -> Iterator[tuple[Node, str, Field]]:
    """Every element of a validated resource that has a code list or a complex type, with
    the node holding it, parents before children; contained resources as their own type."""
    model = model_named(str(resource.get("resourceType")))
    if model is not None:
        yield from _walk(Node(str(resource["resourceType"]), model.__name__, resource), model)


def _walk(node: Node, model: type[BaseModel]) -> Iterator[tuple[Node, str, Field]]:
    fields = fields_of(model)
    for key, value in node.value.items():
        if key == "contained" and isinstance(value, list):
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                inner = model_named(str(item.get("resourceType")))
                if inner is not None:
                    path = f"{node.expression}.contained[{index}]"
                    yield from _walk(Node(path, inner.__name__, item), inner)
            continue
        field = fields.get(key)
        if field is None:
            continue
        yield node, key, field
        if field.model is None:
            continue
        many = isinstance(value, list)
        for index, item in enumerate(value if many else [value]):
            if isinstance(item, dict):
                path = f"{node.expression}.{key}" + (f"[{index}]" if many else "")
                yield from _walk(Node(path, field.model.__name__, item), field.model)
