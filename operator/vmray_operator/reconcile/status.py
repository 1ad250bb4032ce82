"""The cluster's status from what was observed: Ray-compatible node fields, a readiness ladder in conditions
(one small function each), endpoints and counts, as the typed model the CRD is generated from. Pure: the caller
passes the time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmray_operator.api import contract
from vmray_operator.api.contract import VM_STATUS_FAILURE, VM_STATUS_RUNNING, Body, ConditionType, Reason
from vmray_operator.api.models import (
    Condition,
    Endpoints,
    NodeStatus,
    RaySummary,
    TierStatus,
    VMRayClusterSpec,
    VMRayClusterStatus,
    VmServiceStatus,
)
from vmray_operator.conditions import find
from vmray_operator.ray.view import RayView
from vmray_operator.reconcile.decisions import JobsGuard
from vmray_operator.reconcile.nodes import NodeView, node_view
from vmray_operator.reconcile.observed import Observed, load_balancer_ip
from vmray_operator.reconcile.schedule import CLOSED, DRAINING, TierState
from vmray_operator.reconcile.suspension import suspension_verdict, why_suspended
from vmray_operator.render.context import RAY_CLIENT_PORT, dashboard_url
from vmray_operator.timestamps import rfc3339

SHOWN = 10  # VMs named in one condition message; the rest are counted


@dataclass(frozen=True)
class StatusInput:
    spec: VMRayClusterSpec
    generation: int
    head_name: str
    observed: Observed
    previous: Body
    now: str
    missing: list[str] = field(default_factory=list)  # prerequisites that do not exist, as "Kind name"
    invalid: list[str] = field(default_factory=list)  # spec problems the API server cannot catch
    deleting: bool = False
    deletion_stuck: list[str] = field(default_factory=list)  # VMs still there after the deletion timeout
    probe_ray: bool = False  # whether Ray's own view decides readiness
    ray: RayView | None = None  # Ray's view, when probed
    # VMs waiting to be replaced, in the order they go; None when that is not known (nothing could be rendered)
    outdated: list[str] | None = field(default_factory=list)
    tls_ca: str | None = None  # with enable_tls: the CA Secret, once the nodes' certificates are being issued
    refused: list[str] = field(default_factory=list)  # writes the API server refused, as "Kind name: its words"
    rollout_stalled: tuple[str, str] | None = None  # (VM, why): a replaced node that did not come up
    auth_token_secret: str | None = None  # the Secret of the cluster's Ray token, once made
    client_tls_secret: str | None = None  # the Secret of a Ray client's certificate, once issued
    suspended_by_idle: bool = False  # spec.suspend was set by the operator: Ray was idle
    tiers: dict[str, TierState] = field(default_factory=dict)  # the node types with a schedule
    idle_since: str | None = None  # with idle_suspend_minutes: since when Ray has been idle
    waiting_for_jobs: JobsGuard | None = None  # a deletion that waits for Ray's running jobs


@dataclass(frozen=True)
class Verdict:
    """What one condition says now; its lastTransitionTime follows from the previous status."""

    type: ConditionType
    ok: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class _Nodes:
    head: NodeView
    head_status: NodeStatus
    workers: dict[str, NodeStatus]
    lb_ip: str | None


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _nodes(inp: StatusInput) -> _Nodes:
    observed, desired, outdated = inp.observed, inp.spec.autoscaler_desired_workers, set(inp.outdated or ())
    head = node_view(observed.vms.get(inp.head_name), inp.ray, inp.probe_ray)
    workers = {
        name: node_view(vm, inp.ray, inp.probe_ray).as_status(
            desired.get(name) or (vm.get("metadata", {}).get("labels") or {}).get(contract.LABEL_NODE_TYPE),
            name in outdated,
        )
        for name, vm in sorted(observed.workers().items())
    }
    head_status = head.as_status(inp.spec.head_node.node_type, inp.head_name in outdated)
    return _Nodes(head, head_status, workers, load_balancer_ip(observed.service))


def _spec_valid(inp: StatusInput) -> Verdict:
    if inp.invalid:
        return Verdict(ConditionType.SPEC_VALID, False, Reason.INVALID_SPEC, "; ".join(inp.invalid))
    return Verdict(ConditionType.SPEC_VALID, True, Reason.VALID)


def _dependencies_ready(inp: StatusInput) -> Verdict:
    if inp.missing:
        message = "not found: " + ", ".join(inp.missing)
        return Verdict(ConditionType.DEPENDENCIES_READY, False, Reason.DEPENDENCY_NOT_FOUND, message)
    return Verdict(ConditionType.DEPENDENCIES_READY, True, Reason.FOUND)


def _head_ready(inp: StatusInput, nodes: _Nodes) -> Verdict:
    """The head VM's ladder, then the load balancer in front of it."""
    head, kind = nodes.head, ConditionType.HEAD_READY
    if head.vm_status == VM_STATUS_RUNNING and nodes.lb_ip:
        return Verdict(kind, True, Reason.RUNNING, f"head VM {inp.head_name} at {head.ip}")
    if head.ip and not nodes.lb_ip:
        return Verdict(kind, False, Reason.WAITING_FOR_LOAD_BALANCER, "waiting for the head service's external address")
    if inp.head_name not in inp.observed.vms and inp.missing:
        return Verdict(kind, False, Reason.DEPENDENCY_NOT_FOUND, "the head VM waits for: " + ", ".join(inp.missing))
    return Verdict(kind, False, head.reason, f"head VM {inp.head_name}: {head.message}")


def _ray_healthy(inp: StatusInput, nodes: _Nodes) -> Verdict | None:
    """What Ray itself says, through the head's dashboard. Absent when Ray is not probed."""
    if not inp.probe_ray:
        return None
    ray, kind = inp.ray, ConditionType.RAY_HEALTHY
    if not nodes.lb_ip:
        message = "the dashboard is reached through the head service"
        return Verdict(kind, False, Reason.WAITING_FOR_LOAD_BALANCER, message)
    if ray is None:
        return Verdict(kind, False, Reason.WAITING_FOR_RAY, "the dashboard has not been asked yet")
    if not ray.reachable:
        return Verdict(kind, False, Reason.DASHBOARD_UNREACHABLE, f"the Ray dashboard does not answer: {ray.error}")
    if not ray.healthy:
        return Verdict(kind, False, Reason.GCS_UNHEALTHY, ray.error or "Ray's GCS is not healthy")
    if not any(n.alive and n.is_head for n in ray.nodes):
        return Verdict(kind, False, Reason.HEAD_NODE_DOWN, "Ray reports no live head node")
    alive = sum(1 for n in ray.nodes if n.alive)
    return Verdict(kind, True, Reason.HEALTHY, f"Ray {ray.version}: {alive} nodes alive")


def _workers_ready(inp: StatusInput, nodes: _Nodes) -> Verdict:
    desired, workers = inp.spec.autoscaler_desired_workers, nodes.workers
    running = sum(1 for n in desired if n in workers and workers[n].vm_status == VM_STATUS_RUNNING)
    counted = f"{running} of {len(desired)} workers running"
    waiting = [
        f"{n} ({workers[n].reason})" if n in workers else f"{n} ({Reason.PROVISIONING})"
        for n in sorted(desired)
        if n not in workers or workers[n].vm_status != VM_STATUS_RUNNING
    ]
    leaving = sorted(set(workers) - set(desired))
    if not waiting and not leaving:
        return Verdict(ConditionType.WORKERS_READY, True, Reason.RUNNING, counted)
    parts = [counted]
    if waiting:
        parts.append("waiting for " + ", ".join(waiting[:SHOWN]) + (" ..." if len(waiting) > SHOWN else ""))
    if leaving:
        parts.append("removing " + ", ".join(leaving[:SHOWN]))
    failed = any(n in workers and workers[n].vm_status == VM_STATUS_FAILURE for n in desired)
    reason = Reason.WORKER_FAILED if failed else Reason.WORKERS_PROVISIONING
    return Verdict(ConditionType.WORKERS_READY, False, reason, "; ".join(parts))


def _up_to_date(inp: StatusInput) -> Verdict | None:
    """Whether every VM runs the current spec; kept as it was while that is not known (or the cluster goes)."""
    kind, outdated = ConditionType.UP_TO_DATE, inp.outdated
    if outdated is None or inp.deleting:
        previous = find(inp.previous.get("conditions"), kind)
        if previous is None:
            return None
        ok, reason, message = previous.get("status") == "True", previous.get("reason"), previous.get("message")
        return Verdict(kind, ok, str(reason), str(message or ""))
    if not outdated:
        return Verdict(kind, True, Reason.UP_TO_DATE, "every VM runs the current spec")
    vms = "VM" if len(outdated) == 1 else "VMs"
    if inp.rollout_stalled is not None:
        vm, why = inp.rollout_stalled
        message = (
            f"the rollout stopped at VM {vm}, which runs the current spec: {why}; the {len(outdated)} outdated "
            f"{vms} ({_listed(outdated)}) are left as they are until it comes up or the spec changes"
        )
        return Verdict(kind, False, Reason.ROLLOUT_STALLED, message)
    message = f"replacing {len(outdated)} outdated {vms} one at a time: {_listed(outdated)}"
    return Verdict(kind, False, Reason.ROLLING_UPDATE, message)


def _tls(inp: StatusInput) -> Verdict | None:
    """Whether Ray's traffic between this cluster's nodes is mutual TLS. Absent without enable_tls."""
    if not inp.spec.enable_tls:
        return None
    if inp.tls_ca is None:
        message = "the cluster's CA is made once the cluster's dependencies exist"
        return Verdict(ConditionType.TLS, False, Reason.WAITING_FOR_DEPENDENCIES, message)
    message = (
        f"Ray's traffic between nodes is mutual TLS: each node's certificate is issued by the cluster's CA "
        f"(Secret {inp.tls_ca}) for the node's address once it has one, and fetched by the node before Ray starts"
    )
    return Verdict(ConditionType.TLS, True, Reason.ENABLED, message)


def _refused_message(refused: list[str]) -> str:
    shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
    return f"the API server refused a write: {shown}"


# What Ready waits for, in the order the first one not True explains it.
_READY_ORDER = (
    ConditionType.SPEC_VALID,
    ConditionType.DEPENDENCIES_READY,
    ConditionType.HEAD_READY,
    ConditionType.RAY_HEALTHY,
    ConditionType.WORKERS_READY,
)


def _suspended(inp: StatusInput, nodes: _Nodes, ready: Verdict) -> Verdict:
    head = inp.observed.vms.get(inp.head_name)
    off = head is None or (
        (head.get("spec") or {}).get("powerState") == "PoweredOff" and nodes.head.power_state != "PoweredOn"
    )
    before = find(inp.previous.get("conditions"), ConditionType.SUSPENDED) or {}
    was = before.get("status") == "True" or before.get("reason") == Reason.RESUMING
    ok, reason, message = suspension_verdict(
        inp.spec, inp.suspended_by_idle, off, len(inp.observed.workers()), was, ready.ok
    )
    return Verdict(ConditionType.SUSPENDED, ok, reason, message)


def _deleting(inp: StatusInput) -> Verdict:
    kind = ConditionType.READY
    if inp.refused:
        return Verdict(kind, False, Reason.APPLY_FAILED, _refused_message(inp.refused))
    guard = inp.waiting_for_jobs
    if guard is not None:
        jobs = ", ".join(guard.jobs) if guard.jobs else "Ray's answer on which jobs run"
        message = f"the deletion waits for {jobs}, at the latest until {rfc3339(guard.deadline)}"
        return Verdict(kind, False, Reason.WAITING_FOR_JOBS, message)
    if inp.deletion_stuck:
        return Verdict(
            kind, False, Reason.DELETION_STUCK, "still waiting for VMs to go: " + ", ".join(inp.deletion_stuck)
        )
    return Verdict(kind, False, Reason.DELETING, "deleting the cluster's VMs")


def _ready(inp: StatusInput, verdicts: list[Verdict]) -> Verdict:
    kind = ConditionType.READY
    if inp.deleting:
        return _deleting(inp)
    by_type = {v.type: v for v in verdicts}
    blocking = [by_type[t] for t in _READY_ORDER if t in by_type and not by_type[t].ok]
    # a spec problem or a missing dependency explains a refused write; a refused write explains the rest
    if blocking and blocking[0].type in (ConditionType.SPEC_VALID, ConditionType.DEPENDENCIES_READY):
        return Verdict(kind, False, blocking[0].reason, f"{blocking[0].type}: {blocking[0].message}")
    if inp.spec.suspend:
        reason, why = why_suspended(inp.spec, inp.suspended_by_idle)
        return Verdict(kind, False, reason, f"suspended: {why}")
    if inp.refused:
        return Verdict(kind, False, Reason.APPLY_FAILED, _refused_message(inp.refused))
    if blocking:
        return Verdict(kind, False, blocking[0].reason, f"{blocking[0].type}: {blocking[0].message}")
    return Verdict(kind, True, Reason.RUNNING, "the Ray cluster's VMs are running")


def _conditions(previous: Body, now: str, generation: int, verdicts: list[Verdict]) -> list[Condition]:
    """The conditions the verdicts give, by type; lastTransitionTime moves only when a status changes."""
    result = []
    for verdict in sorted(verdicts, key=lambda v: str(v.type)):
        status = "True" if verdict.ok else "False"
        before = find(previous.get("conditions"), verdict.type)
        since = now
        if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
            since = str(before["lastTransitionTime"])
        result.append(
            Condition(
                type=verdict.type,
                status=status,
                reason=verdict.reason,
                message=verdict.message,
                lastTransitionTime=since,
                observedGeneration=generation,
            )
        )
    return result


def _state(inp: StatusInput, head: NodeView, ready: Verdict, suspended: Verdict | None) -> str:
    was_ready = (find(inp.previous.get("conditions"), ConditionType.READY) or {}).get("status") == "True"
    if inp.deleting:
        return "deleting"
    if suspended is not None and suspended.ok:
        return "suspended"
    if ready.ok:
        return "running"
    if head.vm_status == VM_STATUS_FAILURE or (inp.refused and not was_ready):
        return "failed"
    if (inp.missing or inp.invalid) and head.vm_status != VM_STATUS_RUNNING:
        return "pending"
    return "degraded" if was_ready else "provisioning"


def _reach(inp: StatusInput, lb_ip: str | None) -> dict[str, Any]:
    """How to reach the cluster, once its load balancer has an address."""
    if not lb_ip:
        return {}
    endpoints = Endpoints(
        dashboard=dashboard_url(lb_ip),
        client=f"ray://{lb_ip}:{RAY_CLIENT_PORT}",
        gcs=f"{lb_ip}:{inp.spec.head_node.port}",
        auth_token_secret=inp.auth_token_secret,
        client_tls_secret=inp.client_tls_secret,
    )
    return {"vm_service_status": VmServiceStatus(ip=lb_ip), "endpoints": endpoints}


def compute_status(inp: StatusInput) -> VMRayClusterStatus:
    nodes = _nodes(inp)
    found = [
        _spec_valid(inp),
        _dependencies_ready(inp),
        _head_ready(inp, nodes),
        _ray_healthy(inp, nodes),
        _workers_ready(inp, nodes),
        _up_to_date(inp),
        _tls(inp),
    ]
    verdicts = [v for v in found if v is not None]
    ready = _ready(inp, verdicts)
    suspended = None if inp.deleting else _suspended(inp, nodes, ready)
    desired = inp.spec.autoscaler_desired_workers
    healthy_ray = inp.ray if inp.probe_ray and inp.ray is not None and inp.ray.healthy else None
    return VMRayClusterStatus(
        cluster_state=_state(inp, nodes.head, ready, suspended),
        head_node_status=nodes.head_status,
        current_workers=nodes.workers,
        desired_workers=len(desired),
        ready_workers=sum(1 for n in desired if n in nodes.workers and nodes.workers[n].vm_status == VM_STATUS_RUNNING),
        observed_generation=inp.generation,
        conditions=_conditions(inp.previous, inp.now, inp.generation, [*verdicts, ready, *_present(suspended)]),
        ray=RaySummary.model_validate(healthy_ray.summary()) if healthy_ray else None,
        idle_since=inp.idle_since,
        schedules=_schedules(inp) or None,
        **_reach(inp, nodes.lb_ip),
    )


def _present(verdict: Verdict | None) -> list[Verdict]:
    return [verdict] if verdict is not None else []


def _schedules(inp: StatusInput) -> dict[str, TierStatus]:
    return {
        name: TierStatus(
            open=state.state != CLOSED,
            draining=True if state.state == DRAINING else None,
            next_change=rfc3339(state.next_change),
            next_state=state.next_state,
        )
        for name, state in inp.tiers.items()
    }


INVALID_MESSAGE_LIMIT = 1000


def invalid_status(previous: Body, error: str, now: str, generation: int) -> VMRayClusterStatus:
    """The status of a cluster whose stored spec the operator cannot read (stored under an older schema): failed,
    and why; nothing else is known."""
    words = error[:INVALID_MESSAGE_LIMIT]
    verdicts = [
        Verdict(ConditionType.SPEC_VALID, False, Reason.INVALID_SPEC, words),
        Verdict(ConditionType.READY, False, Reason.INVALID_SPEC, words),
    ]
    return VMRayClusterStatus(cluster_state="failed", conditions=_conditions(previous, now, generation, verdicts))


def status_body(status: VMRayClusterStatus) -> Body:
    """The status as the API server holds it: unset fields left out."""
    body: Body = status.model_dump(mode="json", exclude_none=True)
    return body
