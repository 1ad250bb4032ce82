"""Which status changes are only a step of a cluster's way up, and may wait a little to be written together with
the next one (fewer writes, fewer watch events for everyone). Pure."""

from __future__ import annotations

from typing import Any

from vmray_operator.api.contract import PROGRESS_REASONS, VM_STATUS_INITIALIZED, Body, Reason

# The steps of a VM's or a cluster's way up, as opposed to Draining and Deleting on the way out, and being off.
UP_STEPS = PROGRESS_REASONS - {Reason.DRAINING, Reason.DELETING, Reason.POWERED_OFF}


def _without_progress(status: Body) -> Body:
    """The status with the detail of the way up blanked out: which rung of the ladder a VM or condition is
    on, and workers that are still coming up (Ray's provider counts a desired worker that is not listed yet
    as initialized, so listing it early tells Ray nothing new)."""

    def node(value: Any) -> Any:
        if isinstance(value, dict) and value.get("reason") in UP_STEPS | {Reason.RUNNING}:
            return {k: v for k, v in value.items() if k not in ("reason", "power_state")}
        return value

    def coming_up(value: Any) -> bool:
        return (
            isinstance(value, dict)
            and value.get("vm_status") == VM_STATUS_INITIALIZED
            and value.get("reason") in UP_STEPS
        )

    def condition(value: Any) -> Any:
        if isinstance(value, dict) and value.get("reason") in UP_STEPS:
            return {k: v for k, v in value.items() if k not in ("reason", "message")}
        return value

    workers = status.get("current_workers")
    if isinstance(workers, dict):
        workers = {k: node(v) for k, v in workers.items() if not coming_up(v)}
    return {
        **status,
        "head_node_status": node(status.get("head_node_status")),
        "current_workers": workers,
        "conditions": [condition(c) for c in status.get("conditions") or []],
    }


def progress_only(previous: Body, status: Body) -> bool:
    """Whether the only news is a step of a healthy cluster's way up (a VM created, powering on, waiting for
    its address): such a change may wait a little to be written together with the next one. An IP, a VM
    or Ray running, a failure, a VM going away, anything else is not progress only."""
    return previous != status and _without_progress(previous) == _without_progress(status)
