"""Rolling replacement of outdated VMs: which VMs are outdated, which one to replace next, and whether the rollout
is stalled. Pure.

A VM is outdated when its rollout-hash annotation differs from the desired VM of the same name: the hash covers
everything VM Operator cannot change in place (render/objects.py), so a field added to the VM body reaches existing
VMs by construction. Only rendered VMs are judged: workers are rendered once the head's load balancer has an
address, the head once everything its cloud-init needs is known.

Outdated VMs are replaced one at a time by retire() (soft power-off so Ray drains the node, a bounded wait,
deletion); once the VM is gone the plan creates it again under the same name from the current spec. A replacement
starts only while the cluster is settled: no VM of the cluster is draining or being deleted, the head and every
wanted worker exist and are rendered, and every node of the current spec is up. Up means: asked to run, powered on,
with an address, and (when Ray is asked) alive in Ray. So each step waits for the node it made to join Ray, and a
change that breaks Ray stops after one node: that node does not come up, the rest of the fleet is left as it was,
and once it has failed (or not come up within a bound) the rollout is reported stalled, naming it.

Order: workers in name order, the head last, because replacing the head restarts the Ray cluster. A change of the
Ray image is the exception: Ray refuses nodes of another version than the head's, so the head goes first and the
workers follow. An outdated worker that is not up goes before the others: it serves nothing, and waiting for it
could wait for ever (it may be failing for the very reason the spec changed)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from vmray_operator.api.contract import ANNOTATION_DRAIN_STARTED, ANNOTATION_RAY_IMAGE, ANNOTATION_ROLLOUT_HASH, Body
from vmray_operator.reconcile.observed import Observed, failure, is_deleting, vm_address
from vmray_operator.render.desired import DesiredState
from vmray_operator.timestamps import parse

# The VM fields outdatedness is explained by, when they differ (otherwise it is the bootstrap).
_EXPLAINED = (("className", "VM class"), ("imageName", "VM image"), ("storageClass", "storage class"))


@dataclass(frozen=True)
class NodeReadiness:
    """When a node counts as up, and how long a replaced node may take to get there."""

    alive_ips: frozenset[str] | None = None  # the addresses of the nodes Ray reports alive; None: Ray is not asked
    now: datetime.datetime | None = None  # None: a rollout is never reported stalled for time
    timeout: float = 600.0  # seconds a node of the current spec may take to come up before the rollout stalls


# Up at the VM level: without asking Ray, and never stalled for time.
VM_LEVEL = NodeReadiness()


@dataclass(frozen=True)
class Rollout:
    outdated: Mapping[str, str] = field(default_factory=dict)  # VM name -> why, in the order they are replaced
    under_way: tuple[str, ...] = ()  # wanted VMs powered off for their replacement and not deleted yet
    start: str | None = None  # the VM whose replacement starts now
    stalled: tuple[str, str] | None = None  # (VM, why) of a node of the current spec that failed to come up

    @property
    def replacing(self) -> tuple[str, ...]:
        """The VMs to retire() in this step."""
        return (*self.under_way, self.start) if self.start else self.under_way


def is_up(vm: Body, readiness: NodeReadiness = VM_LEVEL) -> bool:
    """Asked to run, powered on, with an address and, when Ray is asked, alive in Ray."""
    status = vm.get("status") or {}
    address = vm_address(vm)
    return (
        not is_deleting(vm)
        and not _powered_off(vm)
        and status.get("powerState") == "PoweredOn"
        and address is not None
        and (readiness.alive_ips is None or address in readiness.alive_ips)
    )


def _powered_off(vm: Body) -> bool:
    """Asked to power off by retire() (drained to be deleted) and not deleted yet."""
    annotations = vm.get("metadata", {}).get("annotations") or {}
    spec = vm.get("spec") or {}
    return spec.get("powerState") == "PoweredOff" and ANNOTATION_DRAIN_STARTED in annotations and not is_deleting(vm)


def _head_name(desired: DesiredState) -> str:
    return str(desired.service["metadata"]["name"])  # the head's service is named like the head VM


def _annotation(vm: Body, key: str) -> str | None:
    value = (vm.get("metadata", {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def ray_image_changed(current: Body, wanted: Body) -> bool:
    """Whether the VM runs another Ray image than wanted (unknown for VMs made before the image was recorded)."""
    have = _annotation(current, ANNOTATION_RAY_IMAGE)
    return have is not None and have != _annotation(wanted, ANNOTATION_RAY_IMAGE)


def why_outdated(current: Body, wanted: Body) -> str | None:
    """What makes a VM differ from the desired VM of its name; None when it is up to date."""
    if _annotation(current, ANNOTATION_ROLLOUT_HASH) == _annotation(wanted, ANNOTATION_ROLLOUT_HASH):
        return None
    have, want = current.get("spec") or {}, wanted["spec"]
    for key, what in _EXPLAINED:
        if have.get(key) != want.get(key):
            return f"its {what} changed from {have.get(key)} to {want.get(key)}"
    if ray_image_changed(current, wanted):
        before, after = _annotation(current, ANNOTATION_RAY_IMAGE), _annotation(wanted, ANNOTATION_RAY_IMAGE)
        return f"its Ray image changed from {before} to {after}"
    if have.get("network") != want.get("network"):
        return "its network changed"
    return "its bootstrap changed"


def _rendered(desired: DesiredState) -> dict[str, Body]:
    rendered = dict(sorted(desired.workers.items()))
    if desired.head_vm is not None:
        rendered[_head_name(desired)] = desired.head_vm
    return rendered


def outdated(desired: DesiredState, observed: Observed) -> dict[str, str]:
    """Every existing VM that differs from its rendered desired VM, with why, in the order they are replaced."""
    result: dict[str, str] = {}
    for name, wanted in _rendered(desired).items():
        current = observed.vms.get(name)
        why = why_outdated(current, wanted) if current is not None else None
        if why:
            result[name] = why
    return result


def _settled(desired: DesiredState, observed: Observed) -> bool:
    """Nothing of the cluster on its way in or out, and every wanted worker can be judged."""
    if any(is_deleting(vm) or _powered_off(vm) for vm in observed.vms.values()):
        return False
    if set(desired.wanted_workers) - set(desired.workers):
        return False  # not rendered yet: whether they are outdated is not known
    return all(name in observed.vms for name in (_head_name(desired), *desired.wanted_workers))


def _stall(vm: Body, readiness: NodeReadiness) -> str | None:
    """Why a node of the current spec that is not up stops the rollout for good, or None while it may still come."""
    failed = failure(vm)
    if failed is not None:
        return f"it failed: {failed[0]}: {failed[1]}"
    created = vm.get("metadata", {}).get("creationTimestamp")
    if readiness.now is None or not isinstance(created, str):
        return None
    since = parse(created)
    if (readiness.now - since).total_seconds() <= readiness.timeout:
        return None
    missing = "joined Ray" if vm_address(vm) and readiness.alive_ips is not None else "got an address"
    return f"it has not {missing} within {readiness.timeout:.0f} s"


def rollout(desired: DesiredState, observed: Observed, readiness: NodeReadiness = VM_LEVEL) -> Rollout:
    """The replacements under way and the one that may start now (at most one at a time)."""
    reasons = outdated(desired, observed)
    head = _head_name(desired)
    wanted = (*sorted(desired.wanted_workers), head)
    # A wanted VM that retire() powered off is taken all the way, even if the spec changed back meanwhile:
    # nothing else would power it on again.
    under_way = tuple(name for name in wanted if name in observed.vms and _powered_off(observed.vms[name]))
    found = Rollout(reasons, under_way)
    suspended = desired.head_vm is not None and desired.head_vm["spec"]["powerState"] == "PoweredOff"
    if not reasons or under_way or suspended or not _settled(desired, observed):
        return found  # one at a time; and nothing is replaced while the cluster is suspended
    vms = observed.vms
    if head in reasons and desired.head_vm is not None and ray_image_changed(vms[head], desired.head_vm):
        return dataclasses.replace(found, start=head)  # the Ray version changes: the head goes first
    down = [name for name in wanted if not is_up(vms[name], readiness)]
    waiting_for = [name for name in down if name not in reasons]
    if waiting_for:  # a node of the current spec is still coming up
        stalls = [(name, why) for name in waiting_for if (why := _stall(vms[name], readiness))]
        return dataclasses.replace(found, stalled=stalls[0] if stalls else None)
    if head in down:
        return dataclasses.replace(found, start=head)  # outdated and serving nothing: every worker waits for it
    workers = [name for name in reasons if name != head]
    candidates = down or workers or [head]
    return dataclasses.replace(found, start=candidates[0])
