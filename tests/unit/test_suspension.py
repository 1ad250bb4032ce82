"""Suspension: what a suspended cluster keeps and gives back, when Ray counts as idle, and how the status and
Events tell it."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import yaml

from tests.support.specs import NAME, context, sample_spec
from tests.unit.test_plan import DRAIN, WORKERS, _all_of, _desired
from tests.unit.test_status import HEAD, SERVICE, ready_cluster, run, vm
from tests.unit.test_status import WORKERS as STATUS_WORKERS
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.ray.view import RayActivity, RayView
from vmray_operator.reconcile.adoption import own_spec_patch
from vmray_operator.reconcile.events import transition_events
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Action, Delete, Kind, Update, plan
from vmray_operator.reconcile.suspension import (
    idle_since,
    idle_suspend_in,
    resumed_patch,
    suspend_patch,
    suspended_by_idle,
)
from vmray_operator.render.autoscaler import CONFIG_KEY
from vmray_operator.render.desired import desired_state

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
BUSY = RayView(reachable=True, healthy=True, activity=RayActivity(active_jobs=("raysubmit_1",)))
IDLE = RayView(reachable=True, healthy=True, activity=RayActivity())


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    condition = find(status["conditions"], type_)
    assert condition is not None, f"no {type_} condition"
    return dict(condition)


def _body(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": NAME, "resourceVersion": "41", "annotations": annotations or {}}}


def _suspended_desired(workers: dict[str, str] = WORKERS) -> Any:
    ctx = context(sample_spec(autoscaler_desired_workers=workers, suspend=True))
    return desired_state(dataclasses.replace(ctx, suspended=True))


# -- idle ---------------------------------------------------------------------------------------------------


def test_idle_since_starts_when_ray_is_idle_holds_while_unknown_and_ends_with_work() -> None:
    spec = sample_spec(idle_suspend_minutes=30)
    assert idle_since(spec, None, IDLE, NOW) == "2026-01-01T12:00:00Z"
    assert idle_since(spec, "2026-01-01T11:00:00Z", IDLE, NOW) == "2026-01-01T11:00:00Z"
    assert idle_since(spec, "2026-01-01T11:00:00Z", None, NOW) == "2026-01-01T11:00:00Z"  # not asked now
    unreachable = RayView(reachable=False, error="connection refused")
    assert idle_since(spec, "2026-01-01T11:00:00Z", unreachable, NOW) == "2026-01-01T11:00:00Z"
    assert idle_since(spec, "2026-01-01T11:00:00Z", BUSY, NOW) is None
    actor = RayView(reachable=True, healthy=True, activity=RayActivity(live_actors=1))
    assert idle_since(spec, None, actor, NOW) is None
    assert idle_since(sample_spec(), None, IDLE, NOW) is None  # no idle_suspend_minutes: not counted


def test_a_resumed_cluster_counts_its_idleness_afresh_instead_of_suspending_again_at_once() -> None:
    suspended = sample_spec(idle_suspend_minutes=30, suspend=True)
    before = "2026-01-01T11:00:00Z"  # idle since an hour: it was suspended for that
    assert idle_since(suspended, before, None, NOW) is None  # while suspended the status forgets it
    resumed = sample_spec(idle_suspend_minutes=30)
    since = idle_since(resumed, idle_since(suspended, before, None, NOW), None, NOW)  # Ray not answered yet
    assert idle_suspend_in(resumed, since, NOW) is None
    since = idle_since(resumed, since, IDLE, NOW)  # Ray's first answer: idle from now on
    assert idle_suspend_in(resumed, since, NOW) == 30 * 60


def test_an_idle_cluster_is_due_after_idle_suspend_minutes_and_never_without_them() -> None:
    spec = sample_spec(idle_suspend_minutes=30)
    assert idle_suspend_in(spec, "2026-01-01T11:50:00Z", NOW) == 20 * 60
    assert idle_suspend_in(spec, "2026-01-01T11:00:00Z", NOW) == 0
    assert idle_suspend_in(spec, None, NOW) is None  # busy
    assert idle_suspend_in(sample_spec(), "2026-01-01T11:00:00Z", NOW) is None
    assert idle_suspend_in(sample_spec(idle_suspend_minutes=30, suspend=True), "2026-01-01T11:00:00Z", NOW) is None


def test_the_operator_suspends_with_a_conditional_patch_saying_why_and_a_resume_forgets_it() -> None:
    patch = suspend_patch(_body())
    assert patch == {
        "metadata": {
            "annotations": {contract.ANNOTATION_SUSPENDED_BY: contract.SUSPENDED_BY_IDLE},
            "resourceVersion": "41",
        },
        "spec": {"suspend": True},
    }
    by_idle = _body({contract.ANNOTATION_SUSPENDED_BY: contract.SUSPENDED_BY_IDLE})
    assert suspended_by_idle(by_idle)
    assert resumed_patch(by_idle, sample_spec(suspend=True)) is None  # still suspended
    assert resumed_patch(by_idle, sample_spec()) == {
        "metadata": {"annotations": {contract.ANNOTATION_SUSPENDED_BY: None}}
    }
    assert resumed_patch(_body(), sample_spec()) is None
    own = own_spec_patch(by_idle, sample_spec(), frozenset())
    assert own == {"metadata": {"annotations": {contract.ANNOTATION_SUSPENDED_BY: None}, "resourceVersion": "41"}}
    assert own_spec_patch(_body(), sample_spec(), frozenset()) is None


# -- what a suspended cluster is ----------------------------------------------------------------------------


def test_a_suspended_cluster_wants_no_worker_a_powered_off_head_and_gives_ray_no_workers() -> None:
    desired = _suspended_desired()
    assert desired.workers == {}
    assert desired.wanted_workers == {}
    assert set(desired.withheld) == set(WORKERS)
    assert desired.head_vm is not None
    assert desired.head_vm["spec"]["powerState"] == "PoweredOff"
    assert desired.autoscaler_config is not None
    config = yaml.safe_load(desired.autoscaler_config["data"][CONFIG_KEY])
    assert {t["max_workers"] for t in config["available_node_types"].values()} == {0}
    running = _desired()
    assert desired.service == running.service  # the load balancer and its address stay
    assert len(desired.secrets) == 1  # the workers' go; the head's boot is the same: it is not replaced
    hash_of = contract.ANNOTATION_ROLLOUT_HASH
    assert running.head_vm is not None
    assert desired.head_vm["metadata"]["annotations"][hash_of] == running.head_vm["metadata"]["annotations"][hash_of]


def _vm_actions(actions: list[Action]) -> list[Action]:
    return [a for a in actions if a.kind is Kind.VM]


def _running() -> Observed:
    observed = _all_of(_desired())
    for body in observed.vms.values():
        body["status"] = {"powerState": "PoweredOn"}
    return observed


def test_suspending_drains_the_workers_before_the_head_powers_off() -> None:
    observed = _running()
    actions = plan(_suspended_desired(), observed, DRAIN)
    drained = {a.name for a in actions if isinstance(a, Update) and a.kind is Kind.VM}
    assert drained == set(WORKERS)  # the head keeps running while Ray drains them
    for action in (a for a in actions if a.kind is Kind.VM):
        assert isinstance(action, Update)
        assert action.patch["spec"]["powerState"] == "PoweredOff"
        assert contract.ANNOTATION_DRAIN_STARTED in action.patch["metadata"]["annotations"]


def test_once_the_workers_are_gone_the_head_powers_off_and_back_on_at_resume() -> None:
    observed = _running()
    head_name = next(n for n in observed.vms if n not in WORKERS)
    only_head = dataclasses.replace(observed, vms={head_name: observed.vms[head_name]})
    (off,) = _vm_actions(plan(_suspended_desired(), only_head, DRAIN))
    assert off == Update(Kind.VM, head_name, {"spec": {"powerState": "PoweredOff"}})
    head_off = {**only_head.vms[head_name], "spec": {**only_head.vms[head_name]["spec"], "powerState": "PoweredOff"}}
    suspended = dataclasses.replace(only_head, vms={head_name: head_off})
    assert _vm_actions(plan(_suspended_desired(), suspended, DRAIN)) == []  # suspended: nothing is deleted
    resumed = _vm_actions(plan(_desired(), suspended, DRAIN))
    assert resumed[0] == Update(Kind.VM, head_name, {"spec": {"powerState": "PoweredOn"}})
    assert sorted(a.name for a in resumed[1:]) == sorted(WORKERS)  # the workers come back with their names


def test_a_worker_that_does_not_drain_in_time_is_deleted_and_never_the_suspended_head() -> None:
    observed = _running()
    late = DRAIN.now + datetime.timedelta(seconds=DRAIN.timeout + 1)
    for name in WORKERS:
        vm_ = observed.vms[name]
        vm_["metadata"]["annotations"] = {contract.ANNOTATION_DRAIN_STARTED: "2026-01-01T12:00:00Z"}
        vm_["spec"]["powerState"] = "PoweredOff"
        vm_.setdefault("status", {})["powerState"] = "PoweredOn"
    actions = plan(_suspended_desired(), observed, dataclasses.replace(DRAIN, now=late))
    deleted = {a.name: a.reason for a in actions if isinstance(a, Delete)}
    assert deleted == {name: "the cluster is suspended" for name in WORKERS}


# -- status and Events --------------------------------------------------------------------------------------


def _status(observed: Observed, previous: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return run(observed, previous, spec=sample_spec(autoscaler_desired_workers=STATUS_WORKERS, **spec))


def _off_head() -> Observed:
    head = vm(HEAD, "head", power="PoweredOff", ip=None)
    head["spec"] = {"powerState": "PoweredOff"}
    return Observed(vms={HEAD: head}, service=SERVICE)


def test_a_suspended_cluster_says_so_and_keeps_its_endpoints() -> None:
    running = _status(ready_cluster())
    suspending = _status(ready_cluster(), running, suspend=True)
    assert _condition(suspending, "Suspended")["reason"] == "Suspending"
    assert _condition(suspending, "Ready")["reason"] == "Suspended"
    done = _status(_off_head(), suspending, suspend=True)
    assert done["cluster_state"] == "suspended"
    suspended = _condition(done, "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("True", "Suspended")
    assert done["endpoints"] == running["endpoints"]  # the same dashboard address
    assert done["current_workers"] == {}
    events = transition_events(suspending, done)
    assert [(e.type, e.reason) for e in events] == [("Normal", "Suspended")]


def test_a_resumed_cluster_is_resuming_until_ready_and_says_it_without_a_warning() -> None:
    suspended = _status(_off_head(), _status(_off_head(), suspend=True), suspend=True)
    booting = _status(_off_head(), suspended)
    assert _condition(booting, "Suspended")["reason"] == "Resuming"
    assert booting["cluster_state"] != "suspended"
    notes = transition_events(suspended, booting)
    assert ("Normal", "Resuming") in [(e.type, e.reason) for e in notes]
    assert all(e.type == "Normal" for e in notes)
    ready = _status(ready_cluster(), booting)
    assert _condition(ready, "Ready")["status"] == "True"
    assert _condition(ready, "Suspended")["reason"] == "Active"


def test_a_cluster_the_operator_suspended_for_idleness_names_that_reason() -> None:
    status = run(_off_head(), spec=sample_spec(suspend=True, idle_suspend_minutes=20), suspended_by_idle=True)
    suspended = _condition(status, "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("True", "IdleTimeout")
    assert "idle for 20 minutes" in suspended["message"]


def test_idle_since_is_shown_while_ray_is_idle() -> None:
    status = _status(ready_cluster(), idle_suspend_minutes=20)
    assert "idle_since" not in status
    shown = run(ready_cluster(), spec=sample_spec(idle_suspend_minutes=20), idle_since="2026-01-01T00:00:00Z")
    assert shown["idle_since"] == "2026-01-01T00:00:00Z"
