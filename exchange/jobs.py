"""The states of the store's asynchronous jobs (`$import`, `$export`), one vocabulary for
both: what their status endpoints and the operators' commands report."""

from __future__ import annotations

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
)
# An export whose files were purged after its retention (`export_retention_seconds`).
EXPIRED = "expired"
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED, EXPIRED})
