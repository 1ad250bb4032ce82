"""Rolling replacement of outdated VMs: which VMs are outdated, and which one to replace next. Pure.

A VM is outdated when its bootstrap-hash annotation or its spec.className differs from the desired VM
of the same name. Only rendered VMs are judged: workers are rendered once the head's load balancer has
an address, the head once everything its cloud-init needs is known.

Outdated VMs are replaced one at a time by retire() (soft power-off so Ray drains the node, a bounded
wait, deletion); once the VM is gone the plan creates it again under the same name from the current
spec. A replacement starts only while the cluster is settled: no VM of the cluster is draining or being
deleted, the head and every wanted worker exist and are rendered, and every wanted worker is up. Up is
what the planner can see of a VM: asked to run, status.powerState PoweredOn and an address in
status.network.primaryIP4 (whether Ray already runs on it is not known here). A worker that is not up
but outdated itself does not hold the rollout: it serves nothing yet, and waiting for it could wait for
ever (it may be failing for the very reason the spec changed), so it is replaced first. Workers go in
name order; the head goes last, once no worker is outdated."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from vmray_operator.reconcile.observed import Body, Observed, is_deleting
from vmray_operator.render.desired import DesiredState
from vmray_operator.render.names import ANNOTATION_BOOTSTRAP_HASH


@dataclass(frozen=True)
class Rollout:
    outdated: Mapping[str, str] = field(default_factory=dict)  # VM name -> why, workers by name, the head last
    under_way: tuple[str, ...] = ()  # wanted VMs powered off for their replacement and not deleted yet
    start: str | None = None  # the VM whose replacement starts now

    @property
    def replacing(self) -> tuple[str, ...]:
        """The VMs to retire() in this step."""
        return (*self.under_way, self.start) if self.start else self.under_way


def is_up(vm: Body) -> bool:
    """Asked to run, powered on and with an address: all the planner can know of a node being up."""
    status = vm.get("status") or {}
    return (
        not is_deleting(vm)
        and not _powered_off(vm)
        and status.get("powerState") == "PoweredOn"
        and bool((status.get("network") or {}).get("primaryIP4"))
    )


def _powered_off(vm: Body) -> bool:
    """Asked to power off (by retire()) and not deleted yet."""
    return (vm.get("spec") or {}).get("powerState") == "PoweredOff" and not is_deleting(vm)


def _head_name(desired: DesiredState) -> str:
    return str(desired.service["metadata"]["name"])  # the head's service is named like the head VM


def why_outdated(current: Body, wanted: Body) -> str | None:
    """What makes a VM differ from the desired VM of its name; None when it is up to date."""
    have_class = (current.get("spec") or {}).get("className")
    want_class = wanted["spec"]["className"]
    if have_class != want_class:
        return f"its VM class changed from {have_class} to {want_class}"
    have_hash = (current.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_BOOTSTRAP_HASH)
    if have_hash != wanted["metadata"]["annotations"][ANNOTATION_BOOTSTRAP_HASH]:
        return "its bootstrap changed"
    return None


def outdated(desired: DesiredState, observed: Observed) -> dict[str, str]:
    """Every existing VM that differs from its rendered desired VM, with why, in the order they are replaced."""
    rendered = dict(sorted(desired.workers.items()))
    if desired.head_vm is not None:
        rendered[_head_name(desired)] = desired.head_vm
    result: dict[str, str] = {}
    for name, wanted in rendered.items():
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


def rollout(desired: DesiredState, observed: Observed) -> Rollout:
    """The replacements under way and the one that may start now (at most one at a time)."""
    reasons = outdated(desired, observed)
    wanted = (*sorted(desired.wanted_workers), _head_name(desired))
    # A wanted VM that retire() powered off is taken all the way, even if the spec changed back meanwhile:
    # nothing else would power it on again.
    under_way = tuple(name for name in wanted if name in observed.vms and _powered_off(observed.vms[name]))
    found = Rollout(reasons, under_way)
    if not reasons or under_way or not _settled(desired, observed):
        return found
    booting = [name for name in sorted(desired.wanted_workers) if not is_up(observed.vms[name])]
    if any(name not in reasons for name in booting):
        return found  # a node with the current spec is still coming up
    workers = [name for name in reasons if name != _head_name(desired)]
    candidates = booting or workers or list(reasons)  # the last: only the head is left
    return dataclasses.replace(found, start=candidates[0])
