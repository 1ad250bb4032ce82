"""The cluster's status from what was observed: Ray-compatible node fields, a readiness ladder in
conditions, endpoints and counts. Pure: the caller passes the time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.ray.view import RayView
from vmray_operator.reconcile.conditions import Condition, find, set_condition
from vmray_operator.reconcile.observed import Body, Observed, is_deleting, load_balancer_ip, vm_address
from vmray_operator.render.context import RAY_CLIENT_PORT, RAY_DASHBOARD_PORT

# Reasons of the steps a healthy cluster passes through on its way up (or out): not failures.
PROGRESS_REASONS = frozenset(
    {
        "Provisioning",
        "PoweringOn",
        "WaitingForNetworkAddress",
        "WaitingForLoadBalancer",
        "WaitingForRay",
        "WorkersProvisioning",
        "Draining",
        "Deleting",
    }
)

# Ready's reason while the API server refuses one of the operator's writes (a webhook, a policy, a quota, a
# name another owner holds): the message names the object and quotes the server.
APPLY_FAILED = "ApplyFailed"

# UpToDate's reason when a node of the current spec does not come up during a rollout: no further VM is replaced.
ROLLOUT_STALLED = "RolloutStalled"

PREREQUISITE_CONDITIONS = (
    "VirtualMachineClassReady",
    "VirtualMachineImageReady",
    "VirtualMachineStorageReady",
    "VirtualMachineBootstrapReady",
)
# What a guest reports of its own bootstrap (guestinfo.vmservice.bootstrap.condition), as VM Operator shows it.
GUEST_BOOTSTRAP = "GuestBootstrap"


@dataclass(frozen=True)
class NodeView:
    """One VM as Ray's autoscaler and people should see it."""

    vm_status: str  # initialized | running | failure
    reason: str  # the step of the readiness ladder the VM is on
    message: str
    ip: str | None = None
    power_state: str | None = None
    ray_status: str | None = None  # ALIVE or DEAD as Ray reports the node; None: Ray does not know it
    ray_node_id: str | None = None

    def as_status(self, node_type: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {"vm_status": self.vm_status, "reason": self.reason}
        if self.ip:
            result["ip"] = self.ip
        if self.ray_status:
            result["ray_status"] = self.ray_status
        if self.ray_node_id:
            result["ray_node_id"] = self.ray_node_id
        if node_type:
            result["node_type"] = node_type
        if self.power_state:
            result["power_state"] = self.power_state
        return result


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def node_view(vm: Body | None, ray: RayView | None = None, probe_ray: bool = False) -> NodeView:
    """The readiness ladder of one VM: Provisioning -> PoweringOn -> WaitingForNetworkAddress -> WaitingForRay
    -> Running. With probe_ray, a VM is running only once Ray reports its node alive."""
    if vm is None:
        return NodeView("initialized", "Provisioning", "the VirtualMachine is being created")
    if is_deleting(vm):
        return NodeView("initialized", "Deleting", "the VirtualMachine is being deleted")
    if (vm.get("spec") or {}).get("powerState") == "PoweredOff":
        return NodeView("initialized", "Draining", "powering off softly: Ray drains the node first")
    # VM Operator writes these; anything else there (a number, a list) is read as absent, never copied
    status = _mapping(vm.get("status"))
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    for type_ in PREREQUISITE_CONDITIONS:
        condition = find(conditions, type_)
        if condition is not None and condition.get("status") == "False":
            return NodeView(
                "failure", _text(condition.get("reason")) or type_, _text(condition.get("message")) or type_
            )
    power = _text(status.get("powerState"))
    # What the guest reported of its own bootstrap (a command of the node failed). Without its address, so
    # that the head's failure is what HeadReady says even while the load balancer has no address yet.
    bootstrap = find(conditions, GUEST_BOOTSTRAP)
    if bootstrap is not None and bootstrap.get("status") == "False":
        reason = _text(bootstrap.get("reason")) or GUEST_BOOTSTRAP
        message = _text(bootstrap.get("message")) or "the guest reported that its bootstrap failed"
        return NodeView("failure", reason, message, power_state=power)
    ip = vm_address(vm)
    if not power or (power != "PoweredOn" and not _created(conditions)):
        return NodeView("initialized", "Provisioning", "vSphere is creating the VM", power_state=power)
    if power != "PoweredOn":
        return NodeView("initialized", "PoweringOn", "the VM is powering on", power_state=power)
    if not ip:
        return NodeView(
            "initialized", "WaitingForNetworkAddress", "waiting for the guest's IP address", power_state=power
        )
    if not probe_ray:
        return NodeView("running", "Running", "", ip=ip, power_state=power)
    nodes = [n for n in (ray.nodes if ray else ()) if n.ip == ip]
    alive = next((n for n in nodes if n.alive), None)
    if alive is not None:
        return NodeView(
            "running", "Running", "", ip=ip, power_state=power, ray_status="ALIVE", ray_node_id=alive.node_id
        )
    if ray is None or not ray.healthy:
        return NodeView("initialized", "WaitingForRay", "waiting for Ray to answer", ip=ip, power_state=power)
    dead = nodes[-1] if nodes else None
    return NodeView(
        "initialized",
        "WaitingForRay",
        "Ray has no live node on this VM yet",
        ip=ip,
        power_state=power,
        ray_status="DEAD" if dead else None,
        ray_node_id=dead.node_id if dead else None,
    )


def _created(conditions: list[Condition]) -> bool:
    created = find(conditions, "VirtualMachineCreated")
    return created is not None and created.get("status") == "True"


@dataclass(frozen=True)
class StatusInput:
    spec: VMRayClusterSpec
    generation: int
    head_name: str
    observed: Observed
    previous: dict[str, Any]
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


def _ladder(
    conditions: list[Condition], type_: str, ok: bool, reason: str, message: str, inp: StatusInput
) -> list[Condition]:
    return set_condition(conditions, type_, ok, reason, message, inp.now, inp.generation)


def compute_status(inp: StatusInput) -> dict[str, Any]:
    spec, observed = inp.spec, inp.observed
    previous_conditions: list[Condition] = list(inp.previous.get("conditions") or [])
    conditions = previous_conditions

    head_vm = observed.vms.get(inp.head_name)
    head = node_view(head_vm, inp.ray, inp.probe_ray)
    lb_ip = load_balancer_ip(observed.service)
    desired = spec.autoscaler_desired_workers
    current_workers = {
        name: _mark_outdated(
            node_view(vm, inp.ray, inp.probe_ray).as_status(
                desired.get(name) or (vm.get("metadata", {}).get("labels") or {}).get("vmray.broadcom.com/node-type")
            ),
            name,
            inp,
        )
        for name, vm in sorted(observed.workers().items())
    }
    ready_workers = sum(1 for n in desired if current_workers.get(n, {}).get("vm_status") == "running")

    # Dependencies
    if inp.invalid:
        conditions = _ladder(conditions, "SpecValid", False, "InvalidSpec", "; ".join(inp.invalid), inp)
    else:
        conditions = _ladder(conditions, "SpecValid", True, "Valid", "", inp)
    if inp.missing:
        conditions = _ladder(
            conditions, "DependenciesReady", False, "DependencyNotFound", "not found: " + ", ".join(inp.missing), inp
        )
    else:
        conditions = _ladder(conditions, "DependenciesReady", True, "Found", "", inp)

    # Head: VM ladder, then the load balancer
    if head.vm_status == "running" and lb_ip:
        conditions = _ladder(conditions, "HeadReady", True, "Running", f"head VM {inp.head_name} at {head.ip}", inp)
    elif head.ip and not lb_ip:
        conditions = _ladder(
            conditions,
            "HeadReady",
            False,
            "WaitingForLoadBalancer",
            "waiting for the head service's external address",
            inp,
        )
    elif head_vm is None and inp.missing:
        conditions = _ladder(
            conditions,
            "HeadReady",
            False,
            "DependencyNotFound",
            "the head VM waits for: " + ", ".join(inp.missing),
            inp,
        )
    else:
        conditions = _ladder(
            conditions, "HeadReady", False, head.reason, f"head VM {inp.head_name}: {head.message}", inp
        )

    conditions = _ray_condition(conditions, inp, lb_ip)
    if not inp.deleting:
        conditions = _up_to_date_condition(conditions, inp)
    conditions = _tls_condition(conditions, inp)

    # Workers
    waiting = [
        f"{n} ({current_workers[n]['reason']})" if n in current_workers else f"{n} (Provisioning)"
        for n in sorted(desired)
        if current_workers.get(n, {}).get("vm_status") != "running"
    ]
    leaving = sorted(set(current_workers) - set(desired))
    if not waiting and not leaving:
        conditions = _ladder(
            conditions, "WorkersReady", True, "Running", f"{ready_workers} of {len(desired)} workers running", inp
        )
    else:
        parts = [f"{ready_workers} of {len(desired)} workers running"]
        if waiting:
            parts.append("waiting for " + ", ".join(waiting[:10]) + (" ..." if len(waiting) > 10 else ""))
        if leaving:
            parts.append("removing " + ", ".join(leaving[:10]))
        failed = any(current_workers.get(n, {}).get("vm_status") == "failure" for n in desired)
        conditions = _ladder(
            conditions,
            "WorkersReady",
            False,
            "WorkerFailed" if failed else "WorkersProvisioning",
            "; ".join(parts),
            inp,
        )

    # Overall
    was_ready = (find(previous_conditions, "Ready") or {}).get("status") == "True"
    if inp.deleting:
        if inp.refused:
            reason, message = APPLY_FAILED, _refused_message(inp.refused)
        elif inp.deletion_stuck:
            reason, message = "DeletionStuck", "still waiting for VMs to go: " + ", ".join(inp.deletion_stuck)
        else:
            reason, message = "Deleting", "deleting the cluster's VMs"
        conditions = _ladder(conditions, "Ready", False, reason, message, inp)
        state = "deleting"
    else:
        order = {"SpecValid": 0, "DependenciesReady": 1, "HeadReady": 2, "RayHealthy": 3, "WorkersReady": 4}
        blocking = [c for c in conditions if c["type"] in order and c["status"] != "True"]
        blocking.sort(key=lambda c: order[c["type"]])
        if blocking and blocking[0]["type"] in ("SpecValid", "DependenciesReady"):
            first = blocking[0]
            conditions = _ladder(
                conditions, "Ready", False, first["reason"], f"{first['type']}: {first['message']}", inp
            )
        elif inp.refused:
            conditions = _ladder(conditions, "Ready", False, APPLY_FAILED, _refused_message(inp.refused), inp)
        elif blocking:
            first = blocking[0]
            conditions = _ladder(
                conditions, "Ready", False, first["reason"], f"{first['type']}: {first['message']}", inp
            )
        else:
            conditions = _ladder(conditions, "Ready", True, "Running", "the Ray cluster's VMs are running", inp)
        state = _state(conditions, head, was_ready, bool(inp.missing or inp.invalid), bool(inp.refused))

    status: dict[str, Any] = {
        "cluster_state": state,
        "head_node_status": _mark_outdated(head.as_status(spec.head_node.node_type), inp.head_name, inp),
        "current_workers": current_workers,
        "desired_workers": len(desired),
        "ready_workers": ready_workers,
        "observed_generation": inp.generation,
        "conditions": conditions,
    }
    if inp.probe_ray and inp.ray is not None and inp.ray.healthy:
        status["ray"] = inp.ray.summary()
    if lb_ip:
        status["vm_service_status"] = {"ip": lb_ip}
        status["endpoints"] = {
            "dashboard": f"http://{lb_ip}:{RAY_DASHBOARD_PORT}",
            "client": f"ray://{lb_ip}:{RAY_CLIENT_PORT}",
            "gcs": f"{lb_ip}:{spec.head_node.port}",
        }
        for key, secret in (("auth_token_secret", inp.auth_token_secret), ("client_tls_secret", inp.client_tls_secret)):
            if secret:
                status["endpoints"][key] = secret
    return status


def _refused_message(refused: list[str]) -> str:
    shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
    return f"the API server refused a write: {shown}"


def _mark_outdated(node: dict[str, Any], name: str, inp: StatusInput) -> dict[str, Any]:
    """The field is only there while it is true: a steady cluster's status stays as small as before."""
    if name in (inp.outdated or ()):
        node["outdated"] = True
    return node


def _up_to_date_condition(conditions: list[Condition], inp: StatusInput) -> list[Condition]:
    """UpToDate: whether every VM runs the current spec. Not part of Ready: a cluster being rolled serves."""
    if inp.outdated is None:
        return conditions  # as it was
    if not inp.outdated:
        return _ladder(conditions, "UpToDate", True, "UpToDate", "every VM runs the current spec", inp)
    count = len(inp.outdated)
    shown = ", ".join(inp.outdated[:10]) + (f" and {count - 10} more" if count > 10 else "")
    vms = "VM" if count == 1 else "VMs"
    if inp.rollout_stalled is not None:
        vm, why = inp.rollout_stalled
        message = (
            f"the rollout stopped at VM {vm}, which runs the current spec: {why}; the {count} outdated {vms} "
            f"({shown}) are left as they are until it comes up or the spec changes"
        )
        return _ladder(conditions, "UpToDate", False, ROLLOUT_STALLED, message, inp)
    message = f"replacing {count} outdated {vms} one at a time, workers first and the head last: {shown}"
    return _ladder(conditions, "UpToDate", False, "RollingUpdate", message, inp)


def _tls_condition(conditions: list[Condition], inp: StatusInput) -> list[Condition]:
    """TLS: whether Ray's traffic between this cluster's nodes is mutual TLS. Not part of Ready."""
    if not inp.spec.enable_tls:
        return [c for c in conditions if c["type"] != "TLS"]
    if inp.tls_ca is None:
        message = "the cluster's CA is made once the cluster's dependencies exist"
        return _ladder(conditions, "TLS", False, "WaitingForDependencies", message, inp)
    message = (
        f"Ray's traffic between nodes is mutual TLS: each node's certificate is issued by the cluster's CA "
        f"(Secret {inp.tls_ca}) for the node's address once it has one, and fetched by the node before Ray starts"
    )
    return _ladder(conditions, "TLS", True, "Enabled", message, inp)


def _ray_condition(conditions: list[Condition], inp: StatusInput, lb_ip: str | None) -> list[Condition]:
    """RayHealthy: what Ray itself says, through the head's dashboard. Absent when Ray is not probed."""
    if not inp.probe_ray:
        return [c for c in conditions if c["type"] != "RayHealthy"]
    ray = inp.ray
    if not lb_ip:
        reason, message = "WaitingForLoadBalancer", "the dashboard is reached through the head service"
    elif ray is None:
        reason, message = "WaitingForRay", "the dashboard has not been asked yet"
    elif not ray.reachable:
        reason, message = "DashboardUnreachable", f"the Ray dashboard does not answer: {ray.error}"
    elif not ray.healthy:
        reason, message = "GcsUnhealthy", ray.error or "Ray's GCS is not healthy"
    elif not any(n.alive and n.is_head for n in ray.nodes):
        reason, message = "HeadNodeDown", "Ray reports no live head node"
    else:
        alive = sum(1 for n in ray.nodes if n.alive)
        return _ladder(conditions, "RayHealthy", True, "Healthy", f"Ray {ray.version}: {alive} nodes alive", inp)
    return _ladder(conditions, "RayHealthy", False, reason, message, inp)


def _state(conditions: list[Condition], head: NodeView, was_ready: bool, blocked: bool, refused: bool) -> str:
    ready = (find(conditions, "Ready") or {}).get("status") == "True"
    if ready:
        return "running"
    if head.vm_status == "failure" or (refused and not was_ready):
        return "failed"
    if blocked and head.vm_status != "running":
        return "pending"
    return "degraded" if was_ready else "provisioning"


# The steps of a VM's or a cluster's way up, as opposed to Draining and Deleting on the way out.
UP_STEPS = PROGRESS_REASONS - {"Draining", "Deleting"}


def _without_progress(status: dict[str, Any]) -> dict[str, Any]:
    """The status with the detail of the way up blanked out: which rung of the ladder a VM or condition is
    on, and workers that are still coming up (Ray's provider counts a desired worker that is not listed yet
    as initialized, so listing it early tells Ray nothing new)."""

    def node(value: Any) -> Any:
        if isinstance(value, dict) and value.get("reason") in UP_STEPS | {"Running"}:
            return {k: v for k, v in value.items() if k not in ("reason", "power_state")}
        return value

    def coming_up(value: Any) -> bool:
        return isinstance(value, dict) and value.get("vm_status") == "initialized" and value.get("reason") in UP_STEPS

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


def progress_only(previous: dict[str, Any], status: dict[str, Any]) -> bool:
    """Whether the only news is a step of a healthy cluster's way up (a VM created, powering on, waiting for
    its address): such a change may wait a little to be written together with the next one. An IP, a VM
    or Ray running, a failure, a VM going away, anything else is not progress only."""
    return previous != status and _without_progress(previous) == _without_progress(status)
