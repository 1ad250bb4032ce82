"""Suspension of a cluster: whether Ray is idle and for how long, when the operator suspends an idle cluster, and
the Suspended condition. Pure: the caller passes the time and Ray's view."""

from __future__ import annotations

import datetime

from vmray_operator.api import contract
from vmray_operator.api.contract import Body, Reason
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.ray.view import RayView
from vmray_operator.timestamps import parse, rfc3339


def suspended_by_idle(body: Body) -> bool:
    return (body["metadata"].get("annotations") or {}).get(
        contract.ANNOTATION_SUSPENDED_BY
    ) == contract.SUSPENDED_BY_IDLE


def idle_since(
    spec: VMRayClusterSpec, previous: str | None, view: RayView | None, now: datetime.datetime
) -> str | None:
    """Since when Ray has been idle: kept while Ray says it is (or cannot say), reset when it is busy. None without
    idle_suspend_minutes and while suspended: a resumed cluster counts from Ray's first answer after it, not from
    before the suspension."""
    if spec.idle_suspend_minutes is None or spec.suspend:
        return None
    if view is None or not view.healthy or view.activity is None:
        return previous  # not known now: as it was
    if not view.activity.idle:
        return None
    return previous or rfc3339(now)


def idle_suspend_in(spec: VMRayClusterSpec, since: str | None, now: datetime.datetime) -> float | None:
    """Seconds until an idle cluster is due to be suspended (0: now), or None when it is not idle, not running or
    has no idle_suspend_minutes."""
    if spec.suspend or spec.idle_suspend_minutes is None or since is None:
        return None
    waited = (now - parse(since)).total_seconds()
    return max(0.0, spec.idle_suspend_minutes * 60 - waited)


def suspend_patch(body: Body) -> Body:
    """What the operator writes to suspend an idle cluster: spec.suspend, and why (a person resumes it as they
    would any suspended cluster: suspend false)."""
    meta = body["metadata"]
    return {
        "metadata": {
            "annotations": {contract.ANNOTATION_SUSPENDED_BY: contract.SUSPENDED_BY_IDLE},
            "resourceVersion": meta["resourceVersion"],
        },
        "spec": {"suspend": True},
    }


def resumed_patch(body: Body, spec: VMRayClusterSpec) -> Body | None:
    """A resumed cluster forgets why it was suspended (the next suspension may be a person's)."""
    if spec.suspend or not suspended_by_idle(body):
        return None
    return {"metadata": {"annotations": {contract.ANNOTATION_SUSPENDED_BY: None}}}


def why_suspended(spec: VMRayClusterSpec, by_idle: bool) -> tuple[str, str]:
    """The reason of a suspended cluster's conditions, and why in words."""
    if by_idle:
        return Reason.IDLE, f"Ray was idle for {spec.idle_suspend_minutes} minutes (no job, task or actor)"
    return Reason.SUSPENDED, "spec.suspend is true"


def suspension_verdict(
    spec: VMRayClusterSpec, by_idle: bool, head_off: bool, workers_left: int, was_suspended: bool, ready: bool
) -> tuple[bool, str, str]:
    """(status, reason, message) of the Suspended condition."""
    if spec.suspend:
        reason, why = why_suspended(spec, by_idle)
        if head_off and workers_left == 0:
            return True, reason, f"{why}: no worker VM, the head VM powered off; set spec.suspend to false to resume"
        return False, Reason.SUSPENDING, f"{why}: removing {workers_left} workers and powering the head off"
    if was_suspended and not ready:
        return False, Reason.RESUMING, "the head VM boots and Ray starts; the workers follow"
    return False, Reason.ACTIVE, "the cluster runs"
