"""The Service and EndpointSlices that list every node's Ray metrics address for Prometheus (render/monitoring.py
says why these objects). Pure: made when missing, brought up to date as VMs come, go and get their addresses."""

from __future__ import annotations

from vmray_operator.api.contract import Body
from vmray_operator.reconcile.observed import Observed, is_deleting, role, version, vm_address
from vmray_operator.reconcile.plan import Action, Create, Delete, Kind, Update
from vmray_operator.render.desired import DesiredState
from vmray_operator.render.monitoring import SLICE_ROLES, MetricsTarget, endpoint_slice

_SLICE_FIELDS = ("endpoints", "ports")  # what the operator keeps of a slice; the rest is the API server's


def metrics_targets(observed: Observed) -> dict[str, list[MetricsTarget]]:
    """The VMs Prometheus can scrape now, by role: powered on, with an address, not being deleted."""
    by_role: dict[str, list[MetricsTarget]] = {node_role: [] for node_role in SLICE_ROLES}
    for name, vm in sorted(observed.vms.items()):
        node_role, address = role(vm), vm_address(vm)
        powered_on = (vm.get("status") or {}).get("powerState") == "PoweredOn"
        if node_role in by_role and address and powered_on and not is_deleting(vm):
            target = MetricsTarget(name, address, str(vm.get("apiVersion", "")), vm["metadata"].get("uid"))
            by_role[node_role].append(target)
    return by_role


def _service_actions(wanted: Body, current: Body | None) -> list[Action]:
    if current is None:
        return [Create(Kind.METRICS_SERVICE, wanted)]
    ports = wanted["spec"]["ports"]
    have = [{key: port.get(key) for key in ports[0]} for port in (current.get("spec") or {}).get("ports") or []]
    if have != ports and not is_deleting(current):
        return [Update(Kind.METRICS_SERVICE, wanted["metadata"]["name"], {"spec": {"ports": ports}}, version(current))]
    return []


def _slice_actions(wanted: Body, current: Body | None) -> list[Action]:
    if current is None:
        return [Create(Kind.ENDPOINT_SLICE, wanted)]
    # an empty list comes back from the API server as null
    changed = {key: wanted[key] for key in _SLICE_FIELDS if (current.get(key) or []) != wanted[key]}
    if changed and not is_deleting(current):
        return [Update(Kind.ENDPOINT_SLICE, wanted["metadata"]["name"], changed, version(current))]
    return []


def metrics_actions(desired: DesiredState, observed: Observed) -> list[Action]:
    """What makes the published scrape targets those of the VMs that exist now."""
    service = desired.metrics_service
    if service is None:
        return []
    actions = _service_actions(service, observed.metrics_service)
    by_role = metrics_targets(observed)
    wanted = [endpoint_slice(service, node_role, targets) for node_role, targets in by_role.items()]
    for body in wanted:
        actions += _slice_actions(body, observed.endpoint_slices.get(body["metadata"]["name"]))
    names = {body["metadata"]["name"] for body in wanted}
    for name, current in sorted(observed.endpoint_slices.items()):
        if name not in names and not is_deleting(current):
            uid = current["metadata"].get("uid")
            actions.append(Delete(Kind.ENDPOINT_SLICE, name, uid, "not a metrics slice of the cluster's"))
    return actions
