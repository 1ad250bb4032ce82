"""The core reconcile on the real API server with the simulator: create, scale, delete, recover; and the seed
sample through to an idle Ready cluster at every supported VM Operator version, each stored by its own API server
with VM Operator's schemas, admission rules and defaults."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXTERNAL_KUBECONFIG, FIGURES, VMOP_STORAGE
from tests.support.clusters import cluster_vms, delete_cluster, get_cluster, sample, wait_condition
from tests.support.version_clouds import NAMESPACE, VersionCloud, missing_fields, version_clouds
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import samples, vmop_crds
from vmray_operator.local.vmop_defaults import CREATED_AT_SCHEMA_VERSION

pytestmark = pytest.mark.simulator


async def test_seed_sample_reaches_ready(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace), namespace)
    cluster = await wait_condition(kube, namespace, "test-ray", "Ready")

    meta, spec, status = cluster["metadata"], cluster["spec"], cluster["status"]
    nounce = meta["labels"][contract.HEAD_NOUNCE_LABEL]
    assert contract.FINALIZER in meta["finalizers"]
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
    expected_version = VMOP_STORAGE
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
    assert service["spec"]["selector"] == {contract.LABEL_CLUSTER: "test-ray", contract.LABEL_ROLE: "head"}


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
    selector = f"{contract.LABEL_CLUSTER}=doomed"
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


# -- every supported VM Operator version --------------------------------------------------------------------------

IDLE_SECONDS = 60.0


@dataclass
class VersionRun:
    """What the seed sample did at one version: its way to Ready, then a minute of idleness."""

    ready_in: float = 0.0
    cluster: dict[str, Any] = field(default_factory=dict)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    idle_writes: int = -1
    changed_while_idle: list[str] = field(default_factory=list)
    simulator_errors: list[str] = field(default_factory=list)
    error: BaseException | None = None


async def _objects(place: VersionCloud) -> dict[str, dict[str, Any]]:
    """The cluster's VMs and services as the API server stores them, at the cloud's (storage) version."""
    selector = f"{contract.LABEL_CLUSTER}=test-ray"
    vms = await place.kube.list(place.vms, NAMESPACE, selector)
    services = await place.kube.list(place.services, NAMESPACE, selector)
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in [*vms, *services]}


async def _run(place: VersionCloud) -> VersionRun:
    run = VersionRun()
    try:
        started = time.monotonic()
        await place.kube.create(r.VMRAYCLUSTERS, sample(NAMESPACE), NAMESPACE)
        run.cluster = await wait_condition(place.kube, NAMESPACE, "test-ray", "Ready", timeout=180)
        run.ready_in = time.monotonic() - started
        run.sent = dict(place.sent)
        run.stored = await _objects(place)

        controller = place.operator.controller
        await wait_for(lambda: _idle(controller), timeout=60, what="operator idle")
        await place.operator.call(controller.reconciler.events.flush())
        writes, before = controller.kube.writes, await _versions(place)
        await asyncio.sleep(IDLE_SECONDS)
        run.idle_writes = controller.kube.writes - writes
        after = await _versions(place)
        run.changed_while_idle = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    except Exception as error:  # told by the version's own test
        run.error = error
    run.simulator_errors = place.simulator_errors()
    return run


async def _versions(place: VersionCloud) -> dict[str, str]:
    """resourceVersion of the cluster and of each of its VMs and services."""
    cluster = await get_cluster(place.kube, NAMESPACE, "test-ray")
    found = {k: o["metadata"]["resourceVersion"] for k, o in (await _objects(place)).items()}
    return {**found, "VMRayCluster/test-ray": (cluster or {}).get("metadata", {}).get("resourceVersion", "")}


@pytest.fixture(scope="module")
async def every_version(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, VersionRun]]:
    """The seed sample on one local cloud per supported version, all at once (the minutes of idleness too)."""
    if EXTERNAL_KUBECONFIG:
        pytest.skip("starts local control planes")
    started = time.monotonic()
    async with version_clouds(vmop_crds.SUPPORTED_VERSIONS, tmp_path_factory) as (clouds, start_time):
        runs = await asyncio.gather(*(_run(place) for place in clouds.values()))
        results = dict(zip(clouds, runs, strict=True))
        yield results
    FIGURES.append(
        f"every VM Operator version: {len(results)} clouds started in {start_time:.1f} s, sample Ready in "
        + ", ".join(f"{v} {run.ready_in:.1f} s" for v, run in results.items())
        + f"; {time.monotonic() - started:.0f} s in all"
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", vmop_crds.SUPPORTED_VERSIONS)
def test_seed_sample_at_every_version(every_version: dict[str, VersionRun], version: str) -> None:
    """The seed sample reaches Ready at this version with VM Operator's schemas, admission rules and defaults in
    force; the API server stores every field the operator sent; once Ready, the operator writes nothing."""
    run = every_version[version]
    if run.error is not None:
        raise run.error
    assert not run.simulator_errors, run.simulator_errors  # its status writes passed the version's schemas
    status = run.cluster["status"]
    assert status["ready_workers"] == 2
    assert status["head_node_status"]["vm_status"] == "running"

    vms = [k for k in run.sent if k.startswith("VirtualMachine/")]
    assert len(vms) == 3
    assert [k for k in run.sent if k.startswith("VirtualMachineService/")]
    for key, body in run.sent.items():
        assert body["apiVersion"] == f"vmoperator.vmware.com/{version}"
        stored = run.stored[key]
        assert list(missing_fields(body, stored)) == [], f"{key}: the API server did not keep what was sent"
    for key in vms:  # VM Operator's defaults were written, and the operator lived with them
        stored = run.stored[key]
        assert stored["metadata"]["annotations"][CREATED_AT_SCHEMA_VERSION] == version
        assert stored["spec"]["network"]["interfaces"][0]["name"] == "eth0"
        if version != "v1alpha2":
            assert stored["spec"]["bootstrap"]["cloudInit"]["instanceID"] == stored["spec"]["biosUUID"]

    assert run.idle_writes == 0, f"{run.idle_writes} writes in {IDLE_SECONDS:.0f} s of a Ready cluster"
    assert run.changed_while_idle == []
