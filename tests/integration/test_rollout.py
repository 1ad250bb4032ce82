"""Rolling replacement on the real API server with the simulator: a spec change that alters a node's
bootstrap replaces the outdated VMs one at a time, each drained first, workers before the head (but for a new Ray
image, which the head takes first)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from tests.support.clusters import cluster_vms, get_cluster, sample, wait_condition
from tests.support.rollout import away, watching
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import samples
from vmray_operator.render import names
from vmray_operator.render.cloudinit import config_digest
from vmray_operator.render.guest_paths import TOKEN_ENV
from vmray_operator.render.objects import USER_DATA_KEY, rollout_hash

pytestmark = pytest.mark.simulator

Body = dict[str, Any]
# what the operator writes into a VM's spec (VM Operator may add more)
OPERATOR_VM_FIELDS = ("className", "imageName", "storageClass", "powerState", "powerOffMode", "bootstrap", "network")


async def _assert_bootstraps_current(kube: Kube, namespace: str, name: str) -> dict[str, Body]:
    """Every worker's rollout hash is the hash of its spec's fields the operator sets and of the user-data its
    Secret holds now, but for the cluster's token (a credential, not the node's make-up). The head's hash also
    leaves out its autoscaler's config (scaling limits do not replace the head); that it is current is what
    UpToDate=True says."""
    vms = await cluster_vms(kube, namespace, name)
    for vm in vms.values():
        secret_name = vm["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
        secret = await kube.get(r.SECRETS, secret_name, namespace)
        assert secret is not None
        config = yaml.safe_load(base64.b64decode(secret["data"][USER_DATA_KEY]).decode())
        config["write_files"] = [f for f in config["write_files"] if f["path"] != TOKEN_ENV]
        if vm["metadata"]["labels"][contract.LABEL_ROLE] == names.ROLE_WORKER:
            sent = {k: v for k, v in vm["spec"].items() if k in OPERATOR_VM_FIELDS}
            basis = config_digest(config)
            assert vm["metadata"]["annotations"][contract.ANNOTATION_ROLLOUT_HASH] == rollout_hash(sent, basis)
    return vms


async def _patch(kube: Kube, namespace: str, name: str, spec: Body) -> None:
    await kube.patch(r.VMRAYCLUSTERS, name, {"spec": spec}, namespace)


async def _delete(kube: Kube, namespace: str, name: str) -> None:
    """The operator takes the cluster down (draining its VMs) before the namespace goes: the namespace's
    own clean-up would delete the VMs underneath the operator."""
    await kube.delete(r.VMRAYCLUSTERS, name, namespace)

    async def gone() -> bool:
        return await get_cluster(kube, namespace, name) is None and not await cluster_vms(kube, namespace, name)

    await wait_for(gone, timeout=60, what=f"{name} deleted")


async def test_a_new_ray_image_replaces_the_head_first_then_the_workers_one_at_a_time(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "roll"), namespace)
    await wait_condition(kube, namespace, "roll", "Ready")
    cluster = await wait_condition(kube, namespace, "roll", "UpToDate", reason="UpToDate")
    assert all("outdated" not in w for w in cluster["status"]["current_workers"].values())
    before = await cluster_vms(kube, namespace, "roll")
    hashes = {n: vm["metadata"]["annotations"][contract.ANNOTATION_ROLLOUT_HASH] for n, vm in before.items()}

    async with watching(kube, namespace, "roll", replaced=set(before)) as seen:
        await _patch(kube, namespace, "roll", {"ray_docker_image": "rayproject/ray:2.61.0"})

    workers = sorted(n for n in before if n != seen.head)
    assert len(workers) == 2
    assert seen.touched == [seen.head, *workers]  # Ray refuses other versions than the head's: the head first
    assert seen.workers_done_before_head is False
    assert seen.most_away == 1
    assert seen.most_unavailable == 1  # and nothing else was booting meanwhile
    assert "RollingUpdate" in seen.up_to_date_reasons
    assert {workers[-1], seen.head} <= seen.marked_outdated

    after = await _assert_bootstraps_current(kube, namespace, "roll")
    assert set(after) == set(before)  # the same names
    for name, vm in after.items():
        assert vm["metadata"]["uid"] != before[name]["metadata"]["uid"]
        assert vm["metadata"]["annotations"][contract.ANNOTATION_ROLLOUT_HASH] != hashes[name]
    cluster = await wait_condition(kube, namespace, "roll", "Ready")
    status = cluster["status"]
    assert "outdated" not in status["head_node_status"]
    assert all("outdated" not in w and w["vm_status"] == "running" for w in status["current_workers"].values())
    up_to_date = find(status["conditions"], "UpToDate")
    assert up_to_date is not None
    assert up_to_date["status"] == "True"
    await _delete(kube, namespace, "roll")


async def test_worker_and_head_changes_replace_only_the_vms_they_alter(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "apart"), namespace)
    await wait_condition(kube, namespace, "apart", "Ready")
    await wait_condition(kube, namespace, "apart", "UpToDate", reason="UpToDate")
    before = await cluster_vms(kube, namespace, "apart")
    head = next(n for n in before if n.startswith("apart-h-"))
    workers = {n for n in before if n != head}

    async with watching(kube, namespace, "apart", replaced=workers) as seen:
        await _patch(kube, namespace, "apart", {"worker_node": {"setup_commands": ["echo worker v2"]}})
    assert seen.touched == sorted(workers)
    assert seen.most_away == 1
    assert "RollingUpdate" in seen.up_to_date_reasons
    middle = await _assert_bootstraps_current(kube, namespace, "apart")
    assert middle[head]["metadata"]["uid"] == before[head]["metadata"]["uid"]

    async with watching(kube, namespace, "apart", replaced={head}) as seen:
        await _patch(kube, namespace, "apart", {"head_node": {"setup_commands": ["echo head v2"]}})
    assert seen.touched == [head]
    assert seen.most_away == 1
    assert head in seen.marked_outdated
    after = await _assert_bootstraps_current(kube, namespace, "apart")
    assert {n: after[n]["metadata"]["uid"] for n in workers} == {n: middle[n]["metadata"]["uid"] for n in workers}
    await wait_condition(kube, namespace, "apart", "Ready")
    await _delete(kube, namespace, "apart")


async def test_no_vm_is_taken_away_for_a_class_that_does_not_exist_yet(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "classy"), namespace)
    await wait_condition(kube, namespace, "classy", "Ready")
    await wait_condition(kube, namespace, "classy", "UpToDate", reason="UpToDate")
    before = await cluster_vms(kube, namespace, "classy")
    workers = {n for n in before if not n.startswith("classy-h-")}

    async with watching(kube, namespace, "classy", replaced=workers) as seen:
        types = {"ray.worker.default": {"vm_class": "best-effort-medium"}}
        await _patch(kube, namespace, "classy", {"common_node_config": {"available_node_types": types}})

        async def reported_missing() -> Body | None:
            cluster = await get_cluster(kube, namespace, "classy")
            condition = find(((cluster or {}).get("status") or {}).get("conditions"), "DependenciesReady")
            if cluster and condition and condition["observedGeneration"] == cluster["metadata"]["generation"]:
                return cluster if condition["status"] == "False" else None
            return None

        cluster = await wait_for(reported_missing, what="the missing class reported")
        missing = find(cluster["status"]["conditions"], "DependenciesReady")
        assert missing is not None
        assert "VirtualMachineClass best-effort-medium" in missing["message"]
        up_to_date = find(cluster["status"]["conditions"], "UpToDate")
        assert up_to_date is not None
        assert up_to_date["reason"] == "RollingUpdate"
        # the reconcile that reported it had acted already: no VM was powered off or deleted
        current = await cluster_vms(kube, namespace, "classy")
        assert {n: vm["metadata"]["uid"] for n, vm in current.items()} == seen.uids
        assert not any(away(vm) for vm in current.values())

        classes = r.VIRTUAL_MACHINE_CLASSES.at_version(operator.vmop_version)
        await kube.create(classes, samples.vm_class("best-effort-medium", 2, classes.api_version), namespace)
    assert seen.touched[: len(workers)] == sorted(workers)
    assert seen.most_away == 1
    after = await cluster_vms(kube, namespace, "classy")
    assert {after[n]["spec"]["className"] for n in workers} == {"best-effort-medium"}
    await wait_condition(kube, namespace, "classy", "Ready")
    await _delete(kube, namespace, "classy")
