"""The canonical bytes of an audit entry and the chain hash over them (pure, no I/O).

Canonical form: a JSON object of every column of `audit_entry` (its id and the
entities/patients lists included), keys sorted, no whitespace, UTF-8, instants in UTC as
ISO 8601 with microseconds and `Z`. The chain hash of an entry is
`sha256(prev_hash + canonical(entry))` in lowercase hex; the first row's `prev_hash` is 64
zeros. Changing any stored value of an entry, or its place in the chain, changes a hash
that `verify` recomputes (45 CFR 164.312(b) audit controls; 164.312(c)(1) integrity).

The field list is fixed on purpose, not read from the table: a column added later must be
added here deliberately (a test compares the two), since adding it changes every hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS_HASH = "0" * 64

CANONICAL_FIELDS = (
    "id",
    "recorded_at",
    "request_id",
    "event_type",
    "subtype",
    "action",
    "outcome",
    "outcome_detail",
    "agent",
    "agent_role",
    "fhir_user",
    "org_code",
    "country",
    "purpose_of_use",
    "source_ip",
    "entities",
    "patients",
)


def utc_instant(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit instants must be aware")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return utc_instant(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical(entry: Mapping[Any, Any]) -> bytes:
    """The deterministic bytes of one entry (a row mapping with every canonical field)."""
    document = {name: _plain(entry[name]) for name in CANONICAL_FIELDS}
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def chain_hash(prev_hash: str, entry: Mapping[Any, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(canonical(entry))
    return digest.hexdigest()
