"""Ray's own autoscaler on the head drives the cluster through the operator: demand adds a worker through
spec.autoscaler_desired_workers, idleness takes it away again after a drain."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.e2e.ray_clusters import READY_TIMEOUT, ray_access, ray_cluster, ray_nodes, submit_job
from tests.support.clusters import cluster_vms, get_cluster
from tests.support.waiting import wait_for
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube.client import Kube

# More one-CPU tasks than the cluster has CPUs (head 2, two workers 1 each): one stays pending until
# Ray's autoscaler has added a worker. Each task says where it ran.
BUSY_JOB = """
import socket, time
import ray

@ray.remote(num_cpus=1)
def busy(seconds):
    time.sleep(seconds)
    return socket.gethostname()

ray.init()
hosts = ray.get([busy.remote(45) for _ in range(5)])
print("ran on", sorted(set(hosts)))
"""


async def test_demand_adds_a_worker_and_idleness_removes_it(
    kube: Kube, namespace: str, operator: Controller, tmp_path: Path
) -> None:
    common: dict[str, Any] = {
        "max_workers": 3,
        "idle_timeout_minutes": 1,
        "vm_image": "vmi-7289e7d90a3c53e73",
        "storage_class": "vsan-default-storage-policy",
        "available_node_types": {
            "ray.head.default": {"vm_class": "best-effort-small"},
            "ray.worker.default": {
                "vm_class": "best-effort-small",
                "min_workers": 2,
                "max_workers": 3,
                "resources": {"cpu": 1},
            },
        },
    }
    async with ray_cluster(kube, namespace, "auto", common_node_config=common) as cluster:
        seeded = set(cluster["spec"]["autoscaler_desired_workers"])
        assert len(seeded) == 2
        access = await ray_access(kube, cluster)
        (tmp_path / "busy.py").write_text(BUSY_JOB)
        job = asyncio.create_task(submit_job(access, tmp_path, "python", "busy.py"))

        async def added_worker_alive() -> str | None:
            current = await get_cluster(kube, namespace, "auto") or {}
            wanted = set(current.get("spec", {}).get("autoscaler_desired_workers", {}))
            workers = current.get("status", {}).get("current_workers", {})
            added = [name for name in sorted(wanted - seeded) if workers.get(name, {}).get("ray_status") == "ALIVE"]
            return added[0] if added else None

        added = await wait_for(added_worker_alive, timeout=READY_TIMEOUT, what="a worker added by Ray's autoscaler")
        assert added.startswith("auto-w-")
        assert added in await cluster_vms(kube, namespace, "auto")

        result = await job
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "ran on" in result.stdout

        # Idle for idle_timeout_minutes: Ray's autoscaler drops a name (whichever node it finds idle, the
        # added one or a seeded one) down to the floor of min_workers; the operator drains and deletes it.
        grown = set((await get_cluster(kube, namespace, "auto") or {})["spec"]["autoscaler_desired_workers"])
        ips = {
            n: w.get("ip")
            for n, w in (await get_cluster(kube, namespace, "auto") or {})["status"]["current_workers"].items()
        }

        async def back_to_the_floor() -> set[str] | None:
            current = await get_cluster(kube, namespace, "auto") or {}
            wanted = set(current.get("spec", {}).get("autoscaler_desired_workers", {}))
            vms = set(await cluster_vms(kube, namespace, "auto"))
            removed = grown - wanted
            return removed if len(wanted) == 2 and not removed & vms else None

        removed = await wait_for(back_to_the_floor, timeout=240, interval=1, what="an idle worker removed")
        for name in removed:
            gone = [n for n in await ray_nodes(access) if n["node_ip"] == ips.get(name)]
            assert gone
            assert gone[-1]["state"] == "DEAD"
        assert added in grown
