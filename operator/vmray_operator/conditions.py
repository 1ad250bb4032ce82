"""Kubernetes-style conditions (metav1.Condition) as the API server holds them: find one, set one; pure. Shared by
the operator and the local cloud (which writes VM Operator's VM conditions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Condition = dict[str, Any]


def find(conditions: Sequence[Condition] | None, type_: str) -> Condition | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Sequence[Condition] | None, type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.get("status") == "True"


def set_condition(
    conditions: Sequence[Condition] | None,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A copy of conditions with type_ set; lastTransitionTime moves only when the status changes."""
    status_text = "True" if status else "False"
    previous = find(conditions, type_)
    transition = now
    if previous is not None and previous.get("status") == status_text and previous.get("lastTransitionTime"):
        transition = previous["lastTransitionTime"]
    updated: Condition = {
        "type": type_,
        "status": status_text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        updated["observedGeneration"] = observed_generation
    result = [dict(c) for c in conditions or () if c.get("type") != type_]
    result.append(updated)
    return sorted(result, key=lambda c: str(c.get("type")))
