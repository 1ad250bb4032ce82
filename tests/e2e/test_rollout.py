"""Rolling replacement with real Ray: a change of the workers' setup commands replaces them one at a time, each
step waiting for the new node to join Ray, while a job keeps running; a change that breaks Ray stops after one
node, reported as RolloutStalled, and the rest of the fleet is left as it was."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.ray_clusters import ray_access, ray_cluster, submit_job
from tests.support.clusters import cluster_vms, get_cluster, wait_condition
from tests.support.rollout import watching
from tests.support.waiting import wait_for
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube

# Small tasks, retried when their node drains away, for as long as the rollout may take.
STEADY_JOB = """
import sys, time
import ray

@ray.remote(num_cpus=0.25, max_retries=10)
def step(i):
    time.sleep(0.5)
    return i

ray.init()
deadline, done = time.time() + float(sys.argv[1]), 0
while time.time() < deadline:
    done += len(ray.get([step.remote(i) for i in range(4)]))
print("steps done:", done)
"""


async def test_a_setup_change_rolls_node_by_node_and_a_breaking_one_stalls(
    kube: Kube, namespace: str, operator: Controller, tmp_path: Path
) -> None:
    async with ray_cluster(kube, namespace, "roll") as cluster:
        access = await ray_access(kube, cluster)
        before = await cluster_vms(kube, namespace, "roll")
        workers = sorted(n for n in before if n.startswith("roll-w-"))
        assert len(workers) == 2
        (tmp_path / "steady.py").write_text(STEADY_JOB)
        job = asyncio.create_task(submit_job(access, tmp_path, "python", "steady.py", "120"))

        async with watching(kube, namespace, "roll", replaced=set(workers), timeout=240) as seen:
            patch = {"worker_node": {"setup_commands": ["echo v2 > /tmp/ray/release  # the new release"]}}
            await kube.patch(r.VMRAYCLUSTERS, "roll", {"spec": patch}, namespace)
        assert seen.touched == workers  # one at a time, in name order; the head untouched
        assert seen.most_away == 1
        assert "RollingUpdate" in seen.up_to_date_reasons
        done = await job
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "steps done:" in done.stdout

        rolled = await cluster_vms(kube, namespace, "roll")
        broken = {"worker_node": {"setup_commands": ["ls /opt/a-tool-not-installed  # breaks every new worker"]}}
        await kube.patch(r.VMRAYCLUSTERS, "roll", {"spec": broken}, namespace)
        stalled = await wait_condition(
            kube, namespace, "roll", "UpToDate", "False", reason="RolloutStalled", timeout=240
        )
        message = (find(stalled["status"]["conditions"], "UpToDate") or {})["message"]
        first, second = workers
        assert f"stopped at VM {first}" in message
        assert "SetupCommandFailed" in message
        assert second in message  # left as it was, and said so
        now = await cluster_vms(kube, namespace, "roll")
        assert now[second]["metadata"]["uid"] == rolled[second]["metadata"]["uid"]
        head = next(n for n in now if n.startswith("roll-h-"))
        assert now[head]["metadata"]["uid"] == before[head]["metadata"]["uid"]

        # It stays stopped: the other worker keeps serving, and Ray still runs on it.
        await asyncio.sleep(10)
        current = await get_cluster(kube, namespace, "roll") or {}
        assert current["status"]["current_workers"][second]["ray_status"] == "ALIVE"
        assert (await cluster_vms(kube, namespace, "roll"))[second]["metadata"]["uid"] == rolled[second]["metadata"][
            "uid"
        ]

        async def warned() -> bool:
            events = await kube.list(r.EVENTS, namespace)
            return any(e["reason"] == "RolloutStalled" and e["involvedObject"]["name"] == "roll" for e in events)

        await wait_for(warned, what="a RolloutStalled Event")
