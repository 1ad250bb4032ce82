"""The planner: what to create, update and delete, in which order."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from tests.support.specs import context, head_of, identity_of, sample_spec
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Create, Delete, Drain, Kind, Update, deletion_plan, plan, retire
from vmray_operator.render.desired import DesiredState, desired_state

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
DRAIN = Drain(NOW, 120.0)
WORKERS = {"test-ray-w-aaaaaaaa": "ray.worker.default", "test-ray-w-bbbbbbbb": "ray.worker.default"}


def _desired(head_address: str | None = "10.212.0.1", workers: dict[str, str] | None = None) -> DesiredState:
    return desired_state(context(sample_spec(autoscaler_desired_workers=workers or WORKERS), head_address))


def _existing(body: dict[str, Any], uid: str = "u") -> dict[str, Any]:
    copied = copy.deepcopy(body)
    copied["metadata"]["uid"] = f"{uid}-{copied['metadata']['name']}"
    return copied


def _all_of(desired: DesiredState) -> Observed:
    return Observed(
        vms={
            n: _existing(vm)
            for n, vm in {head_of(desired)["metadata"]["name"]: head_of(desired), **desired.workers}.items()
        },
        service=_existing(desired.service),
        secrets={n: _existing(s) for n, s in {**desired.secrets, **_token_secrets(desired)}.items()},
        config_maps={c["metadata"]["name"]: _existing(c) for c in [desired.autoscaler_config] if c is not None},
        identity=identity_of(desired),
    )


def _token_secrets(desired: DesiredState) -> dict[str, Any]:
    return {desired.token_secret["metadata"]["name"]: desired.token_secret} if desired.token_secret else {}


def test_empty_cluster_creates_secrets_then_service_then_head_then_workers() -> None:
    actions = plan(_desired(), Observed(), DRAIN)
    kinds = [(type(a).__name__, a.kind) for a in actions]
    assert kinds == [
        ("Create", Kind.SERVICE_ACCOUNT),
        ("Create", Kind.ROLE),
        ("Create", Kind.ROLE_BINDING),
        ("Create", Kind.TOKEN_SECRET),
        ("Create", Kind.CONFIG_MAP),
        ("Create", Kind.SECRET),
        ("Create", Kind.SECRET),
        ("Create", Kind.SERVICE),
        ("Create", Kind.VM),
        ("Create", Kind.VM),
        ("Create", Kind.VM),
    ]
    names = [a.name for a in actions if isinstance(a, Create) and a.kind is Kind.VM]
    assert names[0].startswith("test-ray-h-")


def test_converged_cluster_needs_nothing() -> None:
    desired = _desired()
    assert plan(desired, _all_of(desired), DRAIN) == []


def test_without_head_address_workers_are_neither_created_nor_deleted() -> None:
    with_address = _desired()
    observed = _all_of(with_address)
    assert plan(_desired(head_address=None), observed, DRAIN) == []


def test_worker_removed_from_the_map_is_deleted_with_its_uid() -> None:
    desired = _desired()
    observed = _all_of(desired)
    smaller = _desired(workers={"test-ray-w-aaaaaaaa": "ray.worker.default"})
    actions = plan(smaller, observed, DRAIN)
    assert actions == [
        Delete(Kind.VM, "test-ray-w-bbbbbbbb", "u-test-ray-w-bbbbbbbb", "not in spec.autoscaler_desired_workers")
    ]


def test_vm_already_being_deleted_is_left_alone() -> None:
    desired = _desired()
    observed = _all_of(desired)
    observed.vms["test-ray-w-bbbbbbbb"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    smaller = _desired(workers={"test-ray-w-aaaaaaaa": "ray.worker.default"})
    assert plan(smaller, observed, DRAIN) == []


def test_changed_bootstrap_updates_the_secret_and_changed_ports_update_the_service() -> None:
    desired = _desired()
    observed = _all_of(desired)
    head_secret = head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    observed.secrets[head_secret]["data"]["user-data"] = "b2xk"
    observed.service["spec"]["ports"] = []  # type: ignore[index]
    actions = plan(desired, observed, DRAIN)
    assert {(type(a), a.kind) for a in actions} == {(Update, Kind.SECRET), (Update, Kind.SERVICE)}


def test_stray_head_is_deleted_and_unused_secret_too() -> None:
    desired = _desired()
    observed = _all_of(desired)
    stray = copy.deepcopy(head_of(desired))
    stray["metadata"]["name"] = "test-ray-h-oldnounc"
    stray["metadata"]["uid"] = "old"
    observed.vms["test-ray-h-oldnounc"] = stray
    unused = copy.deepcopy(next(iter(observed.secrets.values())))
    unused["metadata"]["name"] = "test-ray-worker-gone-123456"
    unused["metadata"]["uid"] = "gone"
    observed.secrets["test-ray-worker-gone-123456"] = unused
    actions = plan(desired, observed, DRAIN)
    assert Delete(Kind.VM, "test-ray-h-oldnounc", "old", "not the cluster's head VM") in actions
    assert Delete(Kind.SECRET, "test-ray-worker-gone-123456", "gone", "no node of its type is wanted") in actions


def test_deletion_removes_vms_and_service_first_and_secrets_when_vms_are_gone() -> None:
    desired = _desired()
    observed = _all_of(desired)
    first = deletion_plan(observed, DRAIN)
    assert {a.kind for a in first} == {Kind.VM, Kind.SERVICE}
    assert all(isinstance(a, Delete) and a.uid for a in first)
    later = deletion_plan(Observed(secrets=observed.secrets), DRAIN)
    assert {a.kind for a in later} == {Kind.SECRET}
    assert deletion_plan(Observed(), DRAIN) == []


def _powered_on(vm: dict[str, Any]) -> dict[str, Any]:
    on = _existing(vm)
    on["status"] = {"powerState": "PoweredOn"}
    return on


def test_a_running_worker_is_drained_before_it_is_deleted() -> None:
    vm = _powered_on(_desired().workers["test-ray-w-bbbbbbbb"])
    first = retire(vm, "gone", DRAIN)
    assert first == [
        Update(
            Kind.VM,
            "test-ray-w-bbbbbbbb",
            {
                "metadata": {"annotations": {"vmray.broadcom.com/drain-started": "2026-01-01T12:00:00Z"}},
                "spec": {"powerState": "PoweredOff"},
            },
        )
    ]
    vm["spec"]["powerState"] = "PoweredOff"
    vm["metadata"]["annotations"]["vmray.broadcom.com/drain-started"] = "2026-01-01T12:00:00Z"
    assert retire(vm, "gone", DRAIN) == []  # still draining
    later = Drain(NOW + datetime.timedelta(seconds=121), 120.0)
    assert retire(vm, "gone", later) == [Delete(Kind.VM, "test-ray-w-bbbbbbbb", "u-test-ray-w-bbbbbbbb", "gone")]
    vm["status"]["powerState"] = "PoweredOff"
    assert retire(vm, "gone", DRAIN) == [Delete(Kind.VM, "test-ray-w-bbbbbbbb", "u-test-ray-w-bbbbbbbb", "gone")]


def test_cluster_deletion_drains_running_vms() -> None:
    desired = _desired()
    observed = Observed(vms={n: _powered_on(vm) for n, vm in desired.workers.items()})
    actions = deletion_plan(observed, DRAIN)
    assert {type(a) for a in actions} == {Update}
    assert len(actions) == 2


def test_only_what_the_cluster_controls_is_its_own() -> None:
    from vmray_operator.reconcile.observed import controlled_by

    body = {
        "metadata": {"ownerReferences": [{"uid": "other", "controller": False}, {"uid": "mine", "controller": True}]}
    }
    assert controlled_by(body, "mine")
    assert not controlled_by(body, "other")
    assert not controlled_by({"metadata": {}}, "mine")
    assert not controlled_by({"metadata": {"ownerReferences": [{"uid": "mine"}]}}, "mine")
