"""One VM as Ray's autoscaler and people should see it: the readiness ladder Provisioning -> PoweringOn ->
WaitingForNetworkAddress -> WaitingForRay -> Running, or a failure VM Operator or the guest reported. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmray_operator.api.contract import (
    ANNOTATION_DRAIN_STARTED,
    GUEST_BOOTSTRAP_CONDITION,
    VM_CREATED_CONDITION,
    VM_STATUS_FAILURE,
    VM_STATUS_INITIALIZED,
    VM_STATUS_RUNNING,
    Body,
    Reason,
)
from vmray_operator.api.models import NodeStatus
from vmray_operator.ray.view import RayNodeInfo, RayView
from vmray_operator.reconcile.observed import failure, find_condition, is_deleting, vm_address


@dataclass(frozen=True)
class NodeView:
    vm_status: str  # initialized | running | failure
    reason: str  # the step of the readiness ladder the VM is on
    message: str
    ip: str | None = None
    power_state: str | None = None
    ray_status: str | None = None  # ALIVE or DEAD as Ray reports the node; None: Ray does not know it
    ray_node_id: str | None = None

    def as_status(self, node_type: str | None, outdated: bool = False) -> NodeStatus:
        """outdated only while it is true: a steady cluster's status stays small."""
        return NodeStatus(
            ip=self.ip or None,
            vm_status=self.vm_status,
            node_type=node_type or None,
            power_state=self.power_state or None,
            reason=self.reason,
            ray_status=self.ray_status,
            ray_node_id=self.ray_node_id or None,
            outdated=True if outdated else None,
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _leaving(vm: Body) -> NodeView | None:
    if is_deleting(vm):
        return NodeView(VM_STATUS_INITIALIZED, Reason.DELETING, "the VirtualMachine is being deleted")
    if (vm.get("spec") or {}).get("powerState") == "PoweredOff":
        if ANNOTATION_DRAIN_STARTED in (vm["metadata"].get("annotations") or {}):
            return NodeView(VM_STATUS_INITIALIZED, Reason.DRAINING, "powering off softly: Ray drains the node first")
        message = "powered off: it stays off while the cluster is suspended (its disk stays), else it is powered on"
        return NodeView(VM_STATUS_INITIALIZED, Reason.POWERED_OFF, message, power_state=_power(vm))
    return None


def _power(vm: Body) -> str | None:
    status = vm.get("status")
    return _text(status.get("powerState")) if isinstance(status, dict) else None


def _vm_ladder(vm: Body, power: str | None, ip: str | None) -> NodeView | None:
    """The rungs below Ray: None once the VM is powered on with an address."""
    created = find_condition(vm, VM_CREATED_CONDITION)
    if not power or (power != "PoweredOn" and not (created and created.get("status") == "True")):
        return NodeView(VM_STATUS_INITIALIZED, Reason.PROVISIONING, "vSphere is creating the VM", power_state=power)
    if power != "PoweredOn":
        return NodeView(VM_STATUS_INITIALIZED, Reason.POWERING_ON, "the VM is powering on", power_state=power)
    if not ip:
        message = "waiting for the guest's IP address"
        return NodeView(VM_STATUS_INITIALIZED, Reason.WAITING_FOR_NETWORK_ADDRESS, message, power_state=power)
    return None


def _ray_nodes(ray: RayView | None, ip: str | None) -> tuple[RayNodeInfo | None, RayNodeInfo | None]:
    """Ray's live node on the address, and the last dead one."""
    nodes = [n for n in (ray.nodes if ray else ()) if ip and n.ip == ip]
    alive = next((n for n in nodes if n.alive), None)
    return alive, (nodes[-1] if nodes else None)


def node_view(vm: Body | None, ray: RayView | None = None, probe_ray: bool = False) -> NodeView:
    """With probe_ray, a VM is running only once Ray reports its node alive. A failed prerequisite is a failure;
    so is a failed bootstrap the guest reported (without the address, so that the head's failure is what HeadReady
    says even while the load balancer has none), unless Ray runs on the VM all the same."""
    if vm is None:
        return NodeView(VM_STATUS_INITIALIZED, Reason.PROVISIONING, "the VirtualMachine is being created")
    leaving = _leaving(vm)
    if leaving is not None:
        return leaving
    # VM Operator writes the status; anything of the wrong type there is read as absent, never copied
    status = vm.get("status")
    power, ip = _text(status.get("powerState") if isinstance(status, dict) else None), vm_address(vm)
    failed = failure(vm)
    alive, dead = _ray_nodes(ray, ip) if probe_ray else (None, None)
    if failed is not None and not (failed[2] == GUEST_BOOTSTRAP_CONDITION and alive is not None):
        return NodeView(VM_STATUS_FAILURE, failed[0], failed[1], power_state=power)
    below = _vm_ladder(vm, power, ip)
    if below is not None:
        return below
    if not probe_ray or alive is not None:
        node_id = alive.node_id if alive else None
        return NodeView(VM_STATUS_RUNNING, Reason.RUNNING, "", ip, power, "ALIVE" if alive else None, node_id)
    if ray is None or not ray.healthy:
        return NodeView(VM_STATUS_INITIALIZED, Reason.WAITING_FOR_RAY, "waiting for Ray to answer", ip, power)
    message = "Ray has no live node on this VM yet"
    return NodeView(
        VM_STATUS_INITIALIZED,
        Reason.WAITING_FOR_RAY,
        message,
        ip,
        power,
        "DEAD" if dead else None,
        dead.node_id if dead else None,
    )
