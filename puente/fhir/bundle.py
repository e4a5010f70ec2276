"""Bundles: searchset pages with self/next/previous links, history and outcome entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from puente.db import utcnow
from puente.fhir.dates import instant


@dataclass(frozen=True)
class Page:
    """Where a page of a search sits, to build its links."""

    base: str  # e.g. https://puente.example/fhir/Organization
    params: Sequence[tuple[str, str]]  # the parameters actually used, in order
    offset: int
    count: int
    total: int | None
    returned: int

    def url(self, offset: int) -> str:
        query = [*self.params, ("_count", str(self.count))]
        if offset:
            query.append(("_offset", str(offset)))
        return f"{self.base}?{urlencode(query)}"

    def links(self) -> list[dict[str, str]]:
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
