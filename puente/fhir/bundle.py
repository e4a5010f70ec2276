"""Bundles: searchset pages with self/next/previous links, history and outcome entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B import get_fhir_model_class

from puente.db import utcnow
from puente.fhir.dates import instant

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
MANDATORY_ELEMENTS = ("resourceType", "id", "meta")


@cache
def required_elements(resource_type: str) -> frozenset[str]:
    """A type's elements of minimum cardinality 1 by their JSON names, as the R4B model
    declares them (a required choice `medication[x]` gives each of its variants)."""
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return frozenset()
    names = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if info.is_required() or extra.get("element_required") or extra.get("one_of_many_required"):
            names.add(info.alias or name)
    return frozenset(names)


def subsetted(resource: dict[str, Any], elements: Sequence[str]) -> dict[str, Any]:
    """`_elements`: the listed top-level elements, the resource's mandatory ones whether
    listed or not, and a SUBSETTED tag (R4 3.1.1.5.9: "Servers SHOULD always return
    mandatory elements whether they are requested or not", so that e.g. an Observation
    keeps its `status` and `code`)."""
    keep = {*MANDATORY_ELEMENTS, *required_elements(str(resource.get("resourceType"))), *elements}
    out = {k: v for k, v in resource.items() if k in keep}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), SUBSETTED]
    out["meta"] = meta
    return out


@dataclass(frozen=True)
class Cursors:
    """Keyset paging: the tokens of this page, of the next and of the previous one."""

    current: str | None
    next: str | None
    previous: str | None


@dataclass(frozen=True)
class Page:
    """Where a page of a search sits, to build its links: by offset, or by `cursors`."""

    base: str  # e.g. https://puente.example/fhir/Organization
    params: Sequence[tuple[str, str]]  # the parameters actually used, in order
    offset: int
    count: int
    total: int | None
    returned: int
    cursors: Cursors | None = None

    def url(self, offset: int) -> str:
        query = [*self.params, ("_count", str(self.count))]
        if offset:
            query.append(("_offset", str(offset)))
        return f"{self.base}?{urlencode(query)}"

    def token_url(self, token: str | None) -> str:
        query = [*self.params, ("_count", str(self.count))]
        if token:
            query.append(("_page_token", token))
        return f"{self.base}?{urlencode(query)}"

    def links(self) -> list[dict[str, str]]:
        if self.cursors is not None:
            return self._cursor_links(self.cursors)
        links = [{"relation": "self", "url": self.url(self.offset)}]
        more = (
            self.offset + self.returned < self.total
            if self.total is not None
            else self.returned >= self.count > 0
        )
        if more:
            links.append({"relation": "next", "url": self.url(self.offset + self.count)})
        if self.offset > 0:
            links.append(
                {"relation": "previous", "url": self.url(max(0, self.offset - self.count))}
            )
        return links

    def _cursor_links(self, cursors: Cursors) -> list[dict[str, str]]:
        self_url = self.token_url(cursors.current) if cursors.current else self.url(self.offset)
        links = [{"relation": "self", "url": self_url}]
        if cursors.next:
            links.append({"relation": "next", "url": self.token_url(cursors.next)})
        if cursors.previous:
            links.append({"relation": "previous", "url": self.token_url(cursors.previous)})
        return links


def entry(resource: dict[str, Any], fhir_base: str, mode: str = "match") -> dict[str, Any]:
    return {
        "fullUrl": f"{fhir_base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


def searchset(
    resources: Sequence[dict[str, Any]],
    *,
    fhir_base: str,
    page: Page,
    outcome: dict[str, Any] | None = None,
    included: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(utcnow())},
        "type": "searchset",
    }
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = page.links()
    entries = [entry(r, fhir_base) for r in resources]
    entries += [entry(r, fhir_base, "include") for r in included]
    if outcome is not None:
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": outcome,
                "search": {"mode": "outcome"},
            }
        )
    if entries:
        bundle["entry"] = entries
    return bundle
