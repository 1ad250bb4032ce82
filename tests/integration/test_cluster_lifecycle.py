"""The core reconcile on the real API server with the simulator: create, scale, delete, recover."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from tests.support.clusters import cluster_vms, delete_cluster, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import samples
from vmray_operator.reconcile.conditions import find
from vmray_operator.render import names

pytestmark = pytest.mark.simulator


async def test_seed_sample_reaches_ready(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace), namespace)
    cluster = await wait_condition(kube, namespace, "test-ray", "Ready")

    meta, spec, status = cluster["metadata"], cluster["spec"], cluster["status"]
    nounce = meta["labels"][names.HEAD_NOUNCE_LABEL]
    assert names.FINALIZER in meta["finalizers"]
    workers = spec["autoscaler_desired_workers"]
    assert len(workers) == 2  # min_workers of ray.worker.default
    assert set(workers.values()) == {"ray.worker.default"}
    assert all(w.startswith("test-ray-w-") and len(w) == len("test-ray-w-") + 8 for w in workers)

    assert status["cluster_state"] == "running"
    assert status["head_node_status"]["vm_status"] == "running"
    assert status["head_node_status"]["ip"].startswith("10.211.")
    assert set(status["current_workers"]) == set(workers)
    assert all(w["vm_status"] == "running" and w["ip"] for w in status["current_workers"].values())
    assert status["desired_workers"] == 2
    assert status["ready_workers"] == 2
    lb_ip = status["vm_service_status"]["ip"]
    assert status["endpoints"]["dashboard"] == f"http://{lb_ip}:8265"
    assert status["endpoints"]["client"] == f"ray://{lb_ip}:10001"
    assert status["observed_generation"] == meta["generation"]

    vms = await cluster_vms(kube, namespace, "test-ray")
    head_name = f"test-ray-h-{nounce}"
    expected_version = os.environ.get("VMRAY_TEST_VMOP_VERSION") or "v1alpha5"
    assert operator.vmop_version == expected_version
    served = await kube.get(r.VIRTUAL_MACHINES.at_version(expected_version), head_name, namespace)
    assert served is not None
    assert set(vms) == {head_name, *workers}
    for vm in vms.values():
        owner = vm["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("VMRayCluster", "test-ray", meta["uid"])
        assert vm["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["key"] == "user-data"
    service = await kube.get(r.VIRTUAL_MACHINE_SERVICES, head_name, namespace)
    assert service is not None
    assert service["spec"]["type"] == "LoadBalancer"
    assert {p["port"] for p in service["spec"]["ports"]} == {6245, 8265, 10001}
    assert service["spec"]["selector"] == {names.LABEL_CLUSTER: "test-ray", names.LABEL_ROLE: "head"}


async def test_events_name_every_vm_once_and_ready_once(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "told"), namespace)
    await wait_condition(kube, namespace, "told", "Ready")
    vms = await cluster_vms(kube, namespace, "told")
    await operator.reconciler.events.flush()
    await asyncio.sleep(2)  # a reconcile that still saw the cluster before Ready would post its Events by now
    await operator.reconciler.events.flush()

    events = [e for e in await kube.list(r.EVENTS, namespace) if e["involvedObject"]["name"] == "told"]
    created = [e["message"] for e in events if e["reason"] == "Created"]
    told = [
        name
        for message in created
        for listed in re.findall(r"VirtualMachines?:? ([\w-]+(?:, [\w-]+)*)", message)
        for name in listed.split(", ")
    ]
    assert sorted(told) == sorted(vms), created
    assert len(created) < len(vms) + 1  # the workers made together are told together
    assert [e["reason"] for e in events].count("Ready") == 1
    assert not [e for e in events if e["type"] == "Warning"]


async def test_workers_follow_ray_style_merge_patches(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "scale"), namespace)
    cluster = await wait_condition(kube, namespace, "scale", "Ready")
    seeded = cluster["spec"]["autoscaler_desired_workers"]

    # Scale up the way Ray's autoscaler does: merge-patch new names into the map.
    await kube.patch(
        r.VMRAYCLUSTERS,
        "scale",
        {
            "spec": {
                "autoscaler_desired_workers": {
                    "scale-w-aaaaaaaa": "ray.worker.default",
                    "scale-w-bbbbbbbb": "ray.worker.default",
                }
            }
        },
        namespace,
    )

    async def four_running() -> bool:
        current = await get_cluster(kube, namespace, "scale")
        status = (current or {}).get("status", {})
        return status.get("ready_workers") == 4 and len(status.get("current_workers", {})) == 4

    await wait_for(four_running, what="4 running workers")
    assert set(await cluster_vms(kube, namespace, "scale")) >= {"scale-w-aaaaaaaa", "scale-w-bbbbbbbb"}

    # Scale down: Ray sets an entry to null.
    victim = sorted(seeded)[0]
    await kube.patch(r.VMRAYCLUSTERS, "scale", {"spec": {"autoscaler_desired_workers": {victim: None}}}, namespace)

    async def victim_gone() -> bool:
        current = await get_cluster(kube, namespace, "scale")
        status = (current or {}).get("status", {})
        vms = await cluster_vms(kube, namespace, "scale")
        return (
            victim not in vms and victim not in status.get("current_workers", {}) and status.get("ready_workers") == 3
        )

    await wait_for(victim_gone, what=f"{victim} removed")
    await wait_condition(kube, namespace, "scale", "Ready")


async def test_deletion_leaves_nothing_behind(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "doomed"), namespace)
    await wait_condition(kube, namespace, "doomed", "Ready")
    await delete_cluster(kube, namespace, "doomed")
    selector = f"{names.LABEL_CLUSTER}=doomed"
    assert await kube.list(r.VIRTUAL_MACHINES, namespace, selector) == []
    assert await kube.list(r.VIRTUAL_MACHINE_SERVICES, namespace, selector) == []
    assert await kube.list(r.SECRETS, namespace, selector) == []


async def test_missing_image_and_class_give_a_condition_and_recover(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    body = sample(namespace, "early")
    body["spec"]["common_node_config"]["vm_image"] = "vmi-not-yet"
    body["spec"]["common_node_config"]["available_node_types"]["ray.worker.default"]["vm_class"] = "later-class"
    await kube.create(r.VMRAYCLUSTERS, body, namespace)

    cluster = await wait_condition(kube, namespace, "early", "DependenciesReady", "False")
    condition = find(cluster["status"]["conditions"], "DependenciesReady")
    assert condition is not None
    assert "VirtualMachineImage vmi-not-yet" in condition["message"]
    assert "VirtualMachineClass later-class" in condition["message"]
    assert cluster["status"]["cluster_state"] == "pending"
    assert await cluster_vms(kube, namespace, "early") == {}

    classes, images = r.VIRTUAL_MACHINE_CLASSES, r.VIRTUAL_MACHINE_IMAGES
    await kube.create(classes, samples.vm_class("later-class", 2, classes.api_version), namespace)
    await kube.create(images, samples.vm_image("vmi-not-yet", images.api_version, namespace), namespace)
    await wait_condition(kube, namespace, "early", "Ready")


async def test_cluster_scoped_image_by_display_name_is_found(kube: Kube, namespace: str, operator: Controller) -> None:
    body = sample(namespace, "cvmi")
    body["spec"]["common_node_config"]["vm_image"] = "ubuntu-2204-cluster"  # display name of the CVMI
    await kube.create(r.VMRAYCLUSTERS, body, namespace)
    await wait_condition(kube, namespace, "cvmi", "Ready")
    assert samples.CLUSTER_VM_IMAGE  # the cluster-wide image the display name belongs to


async def test_steady_cluster_costs_no_writes(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "quiet"), namespace)
    await wait_condition(kube, namespace, "quiet", "Ready")
    await wait_for(lambda: _idle(operator), what="operator idle")
    before = await get_cluster(kube, namespace, "quiet")
    writes = operator.kube.writes_by_namespace[namespace]
    operator.enqueue((namespace, "quiet"))  # a resync of an unchanged cluster
    await wait_for(lambda: _idle(operator), what="operator idle")
    after = await get_cluster(kube, namespace, "quiet")
    assert operator.kube.writes_by_namespace[namespace] == writes  # other tests' clusters may still be going
    assert before is not None
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def _idle(controller: Controller) -> bool:
    return controller.queue.idle


def test_sample_file_is_the_seed(tmp_path: Path) -> None:
    body = sample("deploy-ray")
    assert body["spec"]["head_node"] == {"port": 6245, "node_type": "ray.head.default"}
    assert body["spec"]["common_node_config"]["vm_user"] == "ray"
