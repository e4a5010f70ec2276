"""OperationOutcome in the caller's language."""

from __future__ import annotations

from typing import Any

from puente.errors import Issue
from translation.i18n import gettext


def operation_outcome(
    issues: list[Issue], locale: str, *, request_id: str | None = None
) -> dict[str, Any]:
    rendered = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity,
            "code": issue.code,
            "details": {"text": gettext(locale, issue.message_key, **issue.params)},
            "diagnostics": issue.message_key,
        }
        if issue.coding:
            entry["details"]["coding"] = [
                {"system": system, "code": code} for system, code in issue.coding
            ]
        if issue.expression:
            entry["expression"] = list(issue.expression)
        rendered.append(entry)
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": rendered}
    if request_id:
        outcome["id"] = request_id
    return outcome
