"""Rolling replacement: which VMs are outdated and which one is replaced next, alone and through the plan."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from tests.support.specs import NAME, NOUNCE, context, sample_spec
from vmray_operator.api.contract import ANNOTATION_ROLLOUT_HASH
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Create, Delete, Drain, Kind, Update, plan
from vmray_operator.reconcile.rollout import NodeReadiness, is_up, outdated, rollout
from vmray_operator.render.desired import DesiredState, desired_state

HEAD = f"{NAME}-h-{NOUNCE}"
WA, WB, WC = f"{NAME}-w-aaaaaaaa", f"{NAME}-w-bbbbbbbb", f"{NAME}-w-cccccccc"
WORKER_TYPE = "ray.worker.default"
WORKERS = {WB: WORKER_TYPE, WA: WORKER_TYPE, WC: WORKER_TYPE}  # not in name order on purpose
DRAIN = Drain(datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC), 120.0)


def _desired(head_address: str | None = "10.212.0.1", token: str | None = "t", **changes: Any) -> DesiredState:
    spec = sample_spec(autoscaler_desired_workers=WORKERS, **changes)
    return desired_state(context(spec, head_address, token=token))


def _changed_worker_class() -> DesiredState:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    spec.common_node_config.available_node_types[WORKER_TYPE].vm_class = "best-effort-large"
    return desired_state(context(spec))


def _changed_head_class() -> DesiredState:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    spec.common_node_config.available_node_types["ray.head.default"].vm_class = "best-effort-large"
    return desired_state(context(spec))


def _vm(body: dict[str, Any], up: bool = True, ip: str = "10.211.0.9") -> dict[str, Any]:
    """An existing VM made from a desired body: running with an address, or still booting."""
    vm = copy.deepcopy(body)
    vm["metadata"]["uid"] = f"uid-{vm['metadata']['name']}"
    vm["status"] = {"powerState": "PoweredOn", "network": {"primaryIP4": ip}} if up else {"powerState": "PoweredOn"}
    return vm


def _running(desired: DesiredState) -> Observed:
    """Every VM of `desired` up, as if the cluster had converged on it."""
    assert desired.head_vm is not None
    vms = {HEAD: _vm(desired.head_vm), **{n: _vm(b) for n, b in desired.workers.items()}}
    return Observed(vms=vms, service=copy.deepcopy(desired.service))


def _draining(vm: dict[str, Any]) -> dict[str, Any]:
    """As retire() leaves a VM: asked to power off, and when."""
    vm["spec"]["powerState"] = "PoweredOff"
    vm["metadata"].setdefault("annotations", {})["vmray.broadcom.com/drain-started"] = "2026-01-01T12:00:00Z"
    return vm


def _deleting(vm: dict[str, Any]) -> dict[str, Any]:
    vm["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    return vm


NEW_IMAGE: dict[str, Any] = {"ray_docker_image": "rayproject/ray:2.61.0"}
NEW_WORKER_SETUP: dict[str, Any] = {"worker_node": {"setup_commands": ["pip install pandas"]}}


def test_a_converged_cluster_has_nothing_to_replace() -> None:
    desired = _desired()
    step = rollout(desired, _running(desired))
    assert (dict(step.outdated), step.under_way, step.start) == ({}, (), None)


def test_one_worker_with_another_bootstrap_hash_is_replaced() -> None:
    desired = _desired()
    observed = _running(desired)
    observed.vms[WB]["metadata"]["annotations"][ANNOTATION_ROLLOUT_HASH] = "0123456789abcdef"
    step = rollout(desired, observed)
    assert dict(step.outdated) == {WB: "its bootstrap changed"}
    assert step.start == WB


def test_a_vm_without_the_hash_annotation_is_outdated() -> None:
    desired = _desired()
    observed = _running(desired)
    del observed.vms[WA]["metadata"]["annotations"][ANNOTATION_ROLLOUT_HASH]
    assert list(outdated(desired, observed)) == [WA]


def test_a_changed_worker_setup_outdates_every_worker_but_not_the_head() -> None:
    observed = _running(_desired())
    step = rollout(_desired(**NEW_WORKER_SETUP), observed)
    assert list(step.outdated) == [WA, WB, WC]  # name order, not the order of the map
    assert step.start == WA


def test_a_changed_worker_class_outdates_the_workers_by_class() -> None:
    observed = _running(_desired())
    step = rollout(_changed_worker_class(), observed)
    for worker in (WA, WB, WC):
        assert step.outdated[worker] == "its VM class changed from best-effort-small to best-effort-large"
    assert step.start == WA


def test_a_changed_head_class_replaces_the_head_alone() -> None:
    observed = _running(_desired())
    step = rollout(_changed_head_class(), observed)
    assert dict(step.outdated) == {HEAD: "its VM class changed from best-effort-small to best-effort-large"}
    assert step.start == HEAD


NEW_COMMON_SETUP: dict[str, Any] = {
    "common_node_config": {
        **sample_spec().common_node_config.model_dump(),
        "setup_commands": ["pip install pandas  # pinned later"],
    }
}


def test_workers_are_replaced_one_at_a_time_and_the_head_last() -> None:
    old, new = _desired(), _desired(**NEW_COMMON_SETUP)
    observed = _running(old)
    assert list(outdated(new, observed)) == [WA, WB, WC, HEAD]
    replaced: list[str] = []
    for _ in range(4):
        start = rollout(new, observed).start
        assert start is not None
        replaced.append(start)
        # the steps of one replacement: each holds every other VM back
        _draining(observed.vms[start])
        step = rollout(new, observed)
        assert (step.under_way, step.start) == ((start,), None)
        _deleting(observed.vms[start])
        assert rollout(new, observed).replacing == ()
        del observed.vms[start]
        assert rollout(new, observed).replacing == ()
        body = new.head_vm if start == HEAD else new.workers[start]
        assert body is not None
        observed.vms[start] = _vm(body, up=False)
        assert rollout(new, observed).replacing == ()
        observed.vms[start] = _vm(body)
    assert replaced == [WA, WB, WC, HEAD]
    step = rollout(new, observed)
    assert (dict(step.outdated), step.start) == ({}, None)


def test_the_head_waits_while_a_worker_is_outdated() -> None:
    old, new = _desired(), _desired(**NEW_COMMON_SETUP)
    observed = _running(new)
    assert old.head_vm is not None
    observed.vms[WC] = _vm(old.workers[WC])
    observed.vms[HEAD] = _vm(old.head_vm)
    step = rollout(new, observed)
    assert list(step.outdated) == [WC, HEAD]
    assert step.start == WC


def test_nothing_starts_while_a_current_worker_is_still_booting() -> None:
    old, new = _desired(), _desired(**NEW_COMMON_SETUP)
    observed = _running(old)
    observed.vms[WA] = _vm(new.workers[WA], up=False)
    step = rollout(new, observed)
    assert list(step.outdated) == [WB, WC, HEAD]
    assert step.start is None


def test_a_worker_without_an_address_is_not_up() -> None:
    desired = _desired()
    assert is_up(_vm(desired.workers[WA]))
    assert not is_up(_vm(desired.workers[WA], up=False))
    assert not is_up(_draining(_vm(desired.workers[WA])))
    assert not is_up(_deleting(_vm(desired.workers[WA])))


def test_an_outdated_worker_that_is_not_up_goes_first() -> None:
    """It serves nothing, and waiting for it to come up would hold the rollout, maybe for ever."""
    old, new = _desired(), _desired(**NEW_COMMON_SETUP)
    observed = _running(old)
    observed.vms[WC] = _vm(old.workers[WC], up=False)
    assert rollout(new, observed).start == WC


def test_nothing_starts_while_a_wanted_vm_is_missing() -> None:
    new = _desired(**NEW_COMMON_SETUP)
    observed = _running(_desired())
    del observed.vms[WB]  # being created
    assert rollout(new, observed).start is None
    observed = _running(_desired())
    del observed.vms[HEAD]
    assert rollout(new, observed).start is None


def test_nothing_starts_while_another_vm_drains_or_is_deleted() -> None:
    old, new = _desired(), _desired(**NEW_COMMON_SETUP)
    leaving = f"{NAME}-w-leaving0"  # scaled down: not wanted any more
    observed = _running(old)
    observed.vms[leaving] = _draining(_vm(old.workers[WA]))
    observed.vms[leaving]["metadata"]["name"] = leaving
    step = rollout(new, observed)
    assert (step.under_way, step.start) == ((), None)
    _deleting(observed.vms[leaving])
    assert rollout(new, observed).start is None
    del observed.vms[leaving]
    assert rollout(new, observed).start == WA


def test_unrendered_workers_are_not_judged_and_hold_the_rollout() -> None:
    """Workers are rendered once the head's load balancer has an address; until then nothing is known."""
    observed = _running(_desired())
    no_address = _desired(head_address=None, **NEW_COMMON_SETUP)
    step = rollout(no_address, observed)
    assert list(step.outdated) == [HEAD]
    assert step.start is None
    assert rollout(_desired(head_address=None, **NEW_WORKER_SETUP), observed).outdated == {}


def test_an_unrendered_head_is_not_judged() -> None:
    """The head waits for its autoscaler's token before it is rendered (without TLS, workers do not)."""
    observed = _running(_desired(enable_tls=False, enable_token_auth=False))
    step = rollout(_desired(token=None, enable_tls=False, enable_token_auth=False, **NEW_COMMON_SETUP), observed)
    assert list(step.outdated) == [WA, WB, WC]
    assert step.start == WA


def test_a_vm_powered_off_for_its_replacement_is_taken_all_the_way() -> None:
    """Even when the spec changed back meanwhile: nothing would power the VM on again."""
    desired = _desired()
    observed = _running(desired)
    _draining(observed.vms[WB])
    step = rollout(desired, observed)
    assert (dict(step.outdated), step.under_way, step.start) == ({}, (WB,), None)
    actions = plan(desired, observed, DRAIN)
    assert [a for a in actions if a.kind is Kind.VM] == []  # still PoweredOn: Ray is draining
    observed.vms[WB]["status"]["powerState"] = "PoweredOff"
    assert [a for a in plan(desired, observed, DRAIN) if a.kind is Kind.VM] == [
        Delete(Kind.VM, WB, f"uid-{WB}", "replacing it with the current spec: its replacement is under way")
    ]


def _vm_actions(desired: DesiredState, observed: Observed) -> list[Create | Update | Delete]:
    return [a for a in plan(desired, observed, DRAIN) if a.kind is Kind.VM]


def test_the_plan_drains_the_first_outdated_worker_then_deletes_and_creates_it_again() -> None:
    new = _desired(**NEW_COMMON_SETUP)
    observed = _running(_desired())
    first = _vm_actions(new, observed)
    assert first == [
        Update(
            Kind.VM,
            WA,
            {
                "metadata": {"annotations": {"vmray.broadcom.com/drain-started": "2026-01-01T12:00:00Z"}},
                "spec": {"powerState": "PoweredOff"},
            },
        )
    ]
    _draining(observed.vms[WA])["status"]["powerState"] = "PoweredOff"
    assert _vm_actions(new, observed) == [
        Delete(Kind.VM, WA, f"uid-{WA}", "replacing it with the current spec: its bootstrap changed")
    ]
    del observed.vms[WA]
    again = _vm_actions(new, observed)
    assert again == [Create(Kind.VM, new.workers[WA])]
    assert again[0].name == WA  # the same name, the current spec


def test_the_plan_keeps_the_secret_update_apart_from_the_rollout() -> None:
    """The shared bootstrap Secret is updated at once; only the VMs wait their turn."""
    new = _desired(**NEW_WORKER_SETUP)
    observed = _running(_desired())
    observed = Observed(
        vms=observed.vms,
        service=observed.service,
        secrets={n: copy.deepcopy(s) for n, s in _desired().secrets.items()},
    )
    actions = plan(new, observed, DRAIN)
    assert {(type(a), a.kind) for a in actions if a.kind in (Kind.SECRET, Kind.VM)} == {
        (Update, Kind.SECRET),
        (Update, Kind.VM),
    }
    assert [a.name for a in actions if a.kind is Kind.VM] == [WA]


def test_a_new_ray_image_replaces_the_head_first_then_the_workers_it_left_behind() -> None:
    """Ray refuses nodes of another version than the head's: the head goes first."""
    old, new = _desired(), _desired(**NEW_IMAGE)
    observed = _running(old)
    reasons = outdated(new, observed)
    assert list(reasons) == [WA, WB, WC, HEAD]
    assert reasons[HEAD] == "its Ray image changed from rayproject/ray:2.60.0 to rayproject/ray:2.61.0"
    alive = {HEAD: "10.211.0.2", WA: "10.211.0.3", WB: "10.211.0.4", WC: "10.211.0.5"}
    for name, ip in alive.items():
        observed.vms[name]["status"]["network"]["primaryIP4"] = ip
    ray = NodeReadiness(alive_ips=frozenset(alive.values()))
    assert rollout(new, observed, ray).start == HEAD
    assert new.head_vm is not None
    observed.vms[HEAD] = _vm(new.head_vm, ip="10.211.0.6")
    # the old workers cannot join the new head: they are down, outdated, and go one at a time
    ray = NodeReadiness(alive_ips=frozenset({"10.211.0.6"}))
    assert rollout(new, observed, ray).start == WA


def test_each_step_waits_until_the_new_node_is_alive_in_ray() -> None:
    old, new = _desired(), _desired(**NEW_WORKER_SETUP)
    observed = _running(old)
    observed.vms[HEAD]["status"]["network"]["primaryIP4"] = "10.211.0.2"
    observed.vms[WA] = _vm(new.workers[WA], ip="10.211.0.3")  # replaced: an address, Ray not started yet
    for name, ip in ((WB, "10.211.0.4"), (WC, "10.211.0.5")):
        observed.vms[name]["status"]["network"]["primaryIP4"] = ip
    alive = frozenset({"10.211.0.2", "10.211.0.4", "10.211.0.5"})
    before_ray = NodeReadiness(alive_ips=alive)
    step = rollout(new, observed, before_ray)
    assert (step.start, step.stalled) == (None, None)
    assert rollout(new, observed).start == WB  # an address would be enough without asking Ray
    joined = NodeReadiness(alive_ips=alive | {"10.211.0.3"})
    assert rollout(new, observed, joined).start == WB


def _replaced_but_not_up(**status: Any) -> tuple[DesiredState, Observed]:
    old, new = _desired(), _desired(**NEW_WORKER_SETUP)
    observed = _running(old)
    observed.vms[WA] = _vm(new.workers[WA], ip="10.211.0.3")
    observed.vms[WA]["metadata"]["creationTimestamp"] = "2026-01-01T11:55:00Z"
    observed.vms[WA]["status"].update(status)
    return new, observed


NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def test_a_replaced_node_whose_setup_failed_stalls_the_rollout_naming_it() -> None:
    failed = {
        "type": "GuestBootstrap",
        "status": "False",
        "reason": "SetupCommandFailed",
        "message": "setup command 1 of 1 failed with exit status 127: pip install pandas",
    }
    new, observed = _replaced_but_not_up(conditions=[failed])
    step = rollout(new, observed, NodeReadiness(alive_ips=frozenset({"10.211.0.9"}), now=NOW, timeout=3600))
    assert step.start is None
    assert step.stalled == (WA, f"it failed: SetupCommandFailed: {failed['message']}")
    assert list(step.outdated) == [WB, WC]  # the others stay as they are


def test_a_replaced_node_that_does_not_join_ray_in_time_stalls_the_rollout() -> None:
    new, observed = _replaced_but_not_up()
    ray = frozenset({"10.211.0.9"})
    assert rollout(new, observed, NodeReadiness(alive_ips=ray, now=NOW, timeout=600)).stalled is None
    late = rollout(new, observed, NodeReadiness(alive_ips=ray, now=NOW, timeout=60))
    assert late.stalled == (WA, "it has not joined Ray within 60 s")
    assert late.start is None


def test_fields_vm_operator_fills_in_make_no_vm_outdated() -> None:
    desired = _desired()
    observed = _running(desired)
    for vm in observed.vms.values():
        vm["spec"]["minHardwareVersion"] = 15
        vm["spec"]["network"] = {"interfaces": [{"name": "eth0"}]}
        vm["metadata"]["annotations"]["vmoperator.vmware.com/some-default"] = "x"
    assert outdated(desired, observed) == {}


def test_a_new_vm_image_outdates_every_vm_and_says_so() -> None:
    old, new = (
        _desired(),
        _desired(
            common_node_config={**sample_spec().common_node_config.model_dump(), "vm_image": "ubuntu-24.04-vmservice"}
        ),
    )
    reasons = outdated(new, _running(old))
    assert list(reasons) == [WA, WB, WC, HEAD]
    assert set(reasons.values()) == {"its VM image changed from vmi-7289e7d90a3c53e73 to ubuntu-24.04-vmservice"}
