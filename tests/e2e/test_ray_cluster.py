"""End to end, with real Ray in every simulated VM: the data scientist's and the autoscaler's view."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.clusters import cluster_vms, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local.network import ip

DEMO_JOB = Path(__file__).resolve().parents[2] / "operator" / "vmray_operator" / "local" / "demo_job"
READY_TIMEOUT = 240.0


def processes_of(vm_names: set[str]) -> list[int]:
    """Processes that run as part of one of these VMs (their guest environment names the VM)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for variable in environ:
            if variable.startswith(b"RAY_CLOUD_INSTANCE_ID=") and variable.split(b"=", 1)[1].decode() in vm_names:
                found.append(int(entry.name))
    return found


async def ray_nodes(dashboard: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{dashboard}/api/v0/nodes?limit=100&detail=true", timeout=aiohttp.ClientTimeout(total=10)
        ) as response,
    ):
        body = await response.json(content_type=None)
    nodes: list[dict[str, Any]] = body["data"]["result"]["result"]
    return nodes


async def ready_cluster(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, name), namespace)
    return await wait_condition(kube, namespace, name, "Ready", timeout=READY_TIMEOUT)


@contextlib.asynccontextmanager
async def ray_cluster(kube: Kube, namespace: str, name: str) -> AsyncIterator[dict[str, Any]]:
    """A Ready cluster, deleted (and waited for) afterwards: two machines' worth of Ray at once is enough."""
    try:
        yield await ready_cluster(kube, namespace, name)
    finally:
        await kube.delete(r.VMRAYCLUSTERS, name, namespace)

        async def gone() -> bool:
            return await get_cluster(kube, namespace, name) is None

        await wait_for(gone, timeout=180, what=f"{name} deleted")


async def test_sample_runs_ray_and_status_agrees_with_ray(kube: Kube, namespace: str, operator: Controller) -> None:
    async with ray_cluster(kube, namespace, "e2e") as cluster:
        await _check_status_and_job(kube, namespace, cluster)


async def _check_status_and_job(kube: Kube, namespace: str, cluster: dict[str, Any]) -> None:
    status = cluster["status"]
    assert status["cluster_state"] == "running"
    assert len(status["current_workers"]) == 2

    nodes = await ray_nodes(status["endpoints"]["dashboard"])
    alive = {n["node_ip"]: n for n in nodes if n["state"] == "ALIVE"}
    ours = {
        status["head_node_status"]["ip"]: status["head_node_status"],
        **{w["ip"]: w for w in status["current_workers"].values()},
    }
    assert set(alive) == set(ours)
    for address, node in ours.items():
        assert node["ray_status"] == "ALIVE"
        assert node["ray_node_id"] == alive[address]["node_id"]
    assert alive[status["head_node_status"]["ip"]]["is_head_node"]
    assert status["ray"]["alive_nodes"] == 3
    assert status["ray"]["version"] == "2.60.0"
    ray_healthy = next(c for c in status["conditions"] if c["type"] == "RayHealthy")
    assert ray_healthy["status"] == "True"

    # A job submitted through the dashboard address the status gives runs a task on every node.
    job = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "ray"),
            "job",
            "submit",
            "--address",
            status["endpoints"]["dashboard"],
            "--working-dir",
            str(DEMO_JOB),
            "--",
            "python",
            "demo_job.py",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    assert "3 of 3 Ray nodes took part" in job.stdout
    vm_names = {n for n in await cluster_vms(kube, namespace, "e2e")}
    answered = {line.rsplit(" ", 1)[-1] for line in job.stdout.splitlines() if "answered from" in line}
    assert answered == vm_names  # each task ran on its own VM, named like it


async def test_scaling_adds_a_node_and_removes_one_after_a_drain(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    async with ray_cluster(kube, namespace, "scaled") as cluster:
        await _scale_up_and_down(kube, namespace, cluster)


async def _scale_up_and_down(kube: Kube, namespace: str, cluster: dict[str, Any]) -> None:
    dashboard = cluster["status"]["endpoints"]["dashboard"]
    await kube.patch(
        r.VMRAYCLUSTERS,
        "scaled",
        {"spec": {"autoscaler_desired_workers": {"scaled-w-extra000": "ray.worker.default"}}},
        namespace,
    )

    async def three_workers_alive() -> dict[str, Any] | None:
        current = await get_cluster(kube, namespace, "scaled")
        workers = (current or {}).get("status", {}).get("current_workers", {})
        extra = workers.get("scaled-w-extra000", {})
        return current if extra.get("ray_status") == "ALIVE" and len(workers) == 3 else None

    grown = await wait_for(three_workers_alive, timeout=READY_TIMEOUT, what="the added worker's Ray node alive")
    extra_ip = grown["status"]["current_workers"]["scaled-w-extra000"]["ip"]
    assert any(n["node_ip"] == extra_ip and n["state"] == "ALIVE" for n in await ray_nodes(dashboard))

    await kube.patch(
        r.VMRAYCLUSTERS, "scaled", {"spec": {"autoscaler_desired_workers": {"scaled-w-extra000": None}}}, namespace
    )

    async def removed() -> bool:
        return "scaled-w-extra000" not in await cluster_vms(kube, namespace, "scaled")

    await wait_for(removed, timeout=120, what="the removed worker's VM gone")
    gone = [n for n in await ray_nodes(dashboard) if n["node_ip"] == extra_ip]
    assert gone
    assert gone[-1]["state"] == "DEAD"
    assert "draining" in (gone[-1].get("state_message") or ""), gone[-1]  # SIGTERM drain, not a crash
    await wait_condition(kube, namespace, "scaled", "Ready", timeout=60)


async def test_deleting_the_cluster_leaves_no_ray_process(
    kube: Kube, namespace: str, operator: Controller, simulator: Path
) -> None:
    await ready_cluster(kube, namespace, "short")
    vms = await cluster_vms(kube, namespace, "short")
    await kube.delete(r.VMRAYCLUSTERS, "short", namespace)

    async def gone() -> bool:
        return await get_cluster(kube, namespace, "short") is None

    await wait_for(gone, timeout=180, what="cluster deleted")
    for name in vms:
        guest_dir = simulator / "vms" / f"{namespace}_{name}"
        assert not guest_dir.exists(), f"{guest_dir} still there"
    assert processes_of(set(vms)) == []
    assert await kube.list(r.VIRTUAL_MACHINES, namespace, "vmray.broadcom.com/cluster=short") == []
    assert "vmray" not in await ip("netns", "pids", "none", check=False)
