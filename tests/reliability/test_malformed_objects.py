"""Objects written behind the operator's back, with shapes it never writes itself: a VMRayCluster status
of the wrong types or contents, VirtualMachines labelled for clusters that do not exist, and a VM of a
cluster whose status holds values of the wrong types. The operator must not crash, loop on them or
touch what is not its own, and must keep reconciling everything else."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.conftest import WORKER, OperatorProcess, small_cluster
from tests.support.clusters import cluster_vms, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Invalid, Kube
from vmray_operator.render import names

pytestmark = pytest.mark.simulator

# Status of the wrong types: the CRD's structural schema must refuse every one of them.
WRONG_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("conditions-a-string", {"conditions": "Ready"}),
    ("conditions-of-numbers", {"conditions": [1, 2]}),
    ("condition-status-not-an-enum", {"conditions": [{"type": "Ready", "status": "Maybe"}]}),
    ("current-workers-a-list", {"current_workers": ["a", "b"]}),
    ("worker-status-a-number", {"current_workers": {"x-w-00000000": {"vm_status": 3}}}),
    ("head-status-a-string", {"head_node_status": "running"}),
    ("desired-workers-a-string", {"desired_workers": "many"}),
    ("cluster-state-unknown", {"cluster_state": "exploded"}),
    ("endpoints-a-list", {"endpoints": ["http://x"]}),
    ("condition-time-not-a-time", {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "now"}]}),
    (
        "condition-type-twice",
        {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]},
    ),
]

# Status the schema accepts but the operator never writes: it must replace it with the truth.
ODD_CONTENT: dict[str, Any] = {
    "cluster_state": "failed",
    "head_node_status": {"vm_status": "failure", "ip": "not-an-address", "reason": ""},
    "current_workers": {"ghost-w-zzzzzzzz": {"vm_status": "running", "ip": "10.0.0.1"}},
    "desired_workers": -3,
    "ready_workers": 99,
    "observed_generation": -1,
    "vm_service_status": {"ip": ""},
    "conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "", "message": "written by someone else"},
        {
            "type": "HeadReady",
            "status": "False",
            "reason": "Bogus",
            "message": "",
            "lastTransitionTime": "1999-01-01T00:00:00Z",
        },
        {"type": "Invented", "status": "True", "reason": "Nobody", "message": "a condition the operator has not"},
    ],
}


async def _ready_cluster(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, name), namespace)
    return await wait_condition(kube, namespace, name, "Ready")


def _assert_no_tracebacks(operator_process: OperatorProcess) -> None:
    tracebacks = operator_process.tracebacks()
    assert not tracebacks, f"the operator logged {len(tracebacks)} tracebacks; the first:\n{tracebacks[0]}"


async def test_status_of_wrong_types_or_contents_is_refused_or_repaired(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    await operator_process.start_and_wait()
    cluster = await _ready_cluster(kube, namespace, "odd-status")
    desired = set(cluster["spec"]["autoscaler_desired_workers"])

    for case, status in WRONG_TYPES:
        with pytest.raises(Invalid, match=r"status\.") as refused:
            await kube.patch(r.VMRAYCLUSTERS, "odd-status", {"status": status}, namespace, subresource="status")
        assert refused.value.status == 422, case

    await kube.patch(r.VMRAYCLUSTERS, "odd-status", {"status": ODD_CONTENT}, namespace, subresource="status")

    async def repaired() -> dict[str, Any] | None:
        current = await get_cluster(kube, namespace, "odd-status")
        status = (current or {}).get("status") or {}
        conditions = status.get("conditions") or []
        readies = [c for c in conditions if c.get("type") == "Ready"]
        if (
            current
            and status.get("cluster_state") == "running"
            and set(status.get("current_workers") or {}) == desired
            and status.get("desired_workers") == len(desired)
            and status.get("ready_workers") == len(desired)
            and status.get("observed_generation") == current["metadata"]["generation"]
            and (status.get("head_node_status") or {}).get("vm_status") == "running"
            and (status.get("vm_service_status") or {}).get("ip")
            and [c["status"] for c in readies] == ["True"]
            and (find(conditions, "HeadReady") or {}).get("status") == "True"
        ):
            return current
        return None

    await wait_for(repaired, timeout=60, what="the status written behind the operator's back repaired")

    # The operator keeps working on this cluster and on others.
    added = "odd-status-w-added000"
    await kube.patch(
        r.VMRAYCLUSTERS,
        "odd-status",
        {"spec": {"autoscaler_desired_workers": {added: WORKER}}},
        namespace,
    )
    await wait_for(
        _workers_running(kube, namespace, "odd-status", desired | {added}), timeout=60, what=f"{added} running"
    )
    await _ready_cluster(kube, namespace, "after-odd-status")
    assert operator_process.alive
    _assert_no_tracebacks(operator_process)


def _workers_running(kube: Kube, namespace: str, name: str, workers: set[str]) -> Any:
    async def probe() -> bool:
        current = await get_cluster(kube, namespace, name)
        status = (current or {}).get("status") or {}
        running = {n for n, w in (status.get("current_workers") or {}).items() if w.get("vm_status") == "running"}
        return running >= workers and set(await cluster_vms(kube, namespace, name)) >= workers

    return probe


def _vm(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    vms = r.VIRTUAL_MACHINES
    return {
        "apiVersion": vms.api_version,
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "className": "best-effort-small",
            "imageName": "vmi-7289e7d90a3c53e73",
            "storageClass": "vsan-default-storage-policy",
            "powerState": "PoweredOn",
        },
    }


async def test_vms_labelled_for_clusters_that_do_not_exist_are_left_alone(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    await operator_process.start_and_wait()
    strangers = {
        "no-such-cluster-h-abcdefgh": {contract.LABEL_CLUSTER: "no-such-cluster", contract.LABEL_ROLE: names.ROLE_HEAD},
        "odd-label-vm": {contract.LABEL_CLUSTER: "Not_A.Cluster-Name", contract.LABEL_ROLE: "somebody"},
        "empty-label-vm": {contract.LABEL_CLUSTER: ""},
        "future-w-abcdefgh": {contract.LABEL_CLUSTER: "future", contract.LABEL_ROLE: names.ROLE_WORKER},
    }
    for vm_name, labels in strangers.items():
        await kube.create(r.VIRTUAL_MACHINES, _vm(namespace, vm_name, labels), namespace)
    before = {vm["metadata"]["name"]: vm["metadata"]["uid"] for vm in await kube.list(r.VIRTUAL_MACHINES, namespace)}

    # A cluster made afterwards reaches Ready with exactly its own VMs.
    cluster = await _ready_cluster(kube, namespace, "neighbour")
    nounce = cluster["metadata"]["labels"][contract.HEAD_NOUNCE_LABEL]
    wanted = {names.head_vm_name("neighbour", nounce), *cluster["spec"]["autoscaler_desired_workers"]}
    assert set(await cluster_vms(kube, namespace, "neighbour")) == wanted

    # The strangers are still there, untouched by the operator (the simulator powers them on).
    after = {vm["metadata"]["name"]: vm for vm in await kube.list(r.VIRTUAL_MACHINES, namespace)}
    for vm_name in strangers:
        assert vm_name in after, f"the operator deleted {vm_name}, which no cluster of its owns"
        assert after[vm_name]["metadata"]["uid"] == before[vm_name]
        assert not after[vm_name]["metadata"].get("deletionTimestamp")
        assert after[vm_name]["spec"]["powerState"] == "PoweredOn"
        assert not after[vm_name]["metadata"].get("ownerReferences")
    assert await get_cluster(kube, namespace, "no-such-cluster") is None  # no cluster conjured up either
    assert operator_process.alive
    _assert_no_tracebacks(operator_process)
    for vm_name in strangers:
        await kube.delete(r.VIRTUAL_MACHINES, vm_name, namespace)


# VM status values VM Operator's schema lets through but no VM Operator writes, in a VM of a live cluster (values
# of the wrong type the API server refuses now: the local cloud serves VM Operator's own CRDs). VirtualMachineCreated
# stays True so that the simulator, which only rewrites conditions while a VM is being created, leaves them.
_T = "2026-01-01T00:00:00Z"
_CREATED = {
    "type": "VirtualMachineCreated",
    "status": "True",
    "reason": "True",
    "message": "",
    "lastTransitionTime": _T,
}
GARBAGE_VM_STATUS: list[tuple[str, dict[str, Any]]] = [
    ("ip-not-an-address", {"network": {"primaryIP4": "10.211.0.9; reboot"}}),
    ("ip-v6-for-v4", {"network": {"primaryIP4": "fd00::9"}}),
    (
        "condition-message-huge",
        {
            "conditions": [
                _CREATED,
                {
                    "type": "VirtualMachineClassReady",
                    "status": "False",
                    "reason": "Odd",
                    "message": "x" * 20000,
                    "lastTransitionTime": _T,
                },
            ]
        },
    ),
]


@pytest.mark.parametrize("status", [s for _, s in GARBAGE_VM_STATUS], ids=[c for c, _ in GARBAGE_VM_STATUS])
async def test_a_vm_status_of_wrong_types_does_not_stop_its_cluster(
    kube: Kube, namespace: str, operator_process: OperatorProcess, status: dict[str, Any]
) -> None:
    await operator_process.start_and_wait()
    cluster = await _ready_cluster(kube, namespace, "garbage")
    workers = set(cluster["spec"]["autoscaler_desired_workers"])
    victim = sorted(workers)[0]
    await kube.patch(r.VIRTUAL_MACHINES, victim, {"status": status}, namespace, subresource="status")

    # The cluster's status still follows what happens: a new worker shows up and runs.
    added = "garbage-w-later000"
    await kube.patch(r.VMRAYCLUSTERS, "garbage", {"spec": {"autoscaler_desired_workers": {added: WORKER}}}, namespace)

    async def added_running() -> bool:
        current = await get_cluster(kube, namespace, "garbage")
        worker = ((current or {}).get("status") or {}).get("current_workers", {}).get(added) or {}
        return worker.get("vm_status") == "running"

    await wait_for(added_running, timeout=30, what=f"{added} running in the status of a cluster with a garbage VM")
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "bystander"), namespace)
    await wait_condition(kube, namespace, "bystander", "Ready")
    assert operator_process.alive
    _assert_no_tracebacks(operator_process)


async def test_a_vm_another_controller_owns_is_not_taken_for_a_worker(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    """A VM that carries a live cluster's label but is controlled by another object (its controller
    ownerReference says so) is not the operator's to delete."""
    await operator_process.start_and_wait()
    cluster = await _ready_cluster(kube, namespace, "labelled")
    owner = await kube.create(
        r.CONFIG_MAPS,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "someone-else", "namespace": namespace}},
        namespace,
    )
    labels = {contract.LABEL_CLUSTER: "labelled", contract.LABEL_ROLE: names.ROLE_WORKER}
    foreign = _vm(namespace, "labelled-w-foreign0", labels)
    foreign["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "someone-else",
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
    ]
    created = await kube.create(r.VIRTUAL_MACHINES, foreign, namespace)

    # Something that makes the operator look at the cluster again: a worker added the way Ray adds one.
    await kube.patch(
        r.VMRAYCLUSTERS,
        "labelled",
        {"spec": {"autoscaler_desired_workers": {"labelled-w-rayadded": WORKER}}},
        namespace,
    )
    workers = set(cluster["spec"]["autoscaler_desired_workers"]) | {"labelled-w-rayadded"}
    await wait_for(_workers_running(kube, namespace, "labelled", workers), timeout=60, what="the added worker")
    vm = await kube.get(r.VIRTUAL_MACHINES, "labelled-w-foreign0", namespace)
    assert vm is not None, "the operator deleted a VM another controller owns"
    assert vm["metadata"]["uid"] == created["metadata"]["uid"]
    assert not vm["metadata"].get("deletionTimestamp"), "the operator deleted a VM another controller owns"
    assert vm["spec"]["powerState"] == "PoweredOn", "the operator powered off a VM another controller owns"
    await kube.delete(r.VIRTUAL_MACHINES, "labelled-w-foreign0", namespace)
