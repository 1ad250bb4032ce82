"""Time from `kubectl apply` to Ready for the sample (1 head + 2 workers, real Ray in every VM), against
the floor: the same 3 Ray nodes started by hand in network namespaces, with no Kubernetes at all.

    python -m tests.bench.ray_floor
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from vmray_operator.local import cloud
from vmray_operator.local.network import VmNetwork
from vmray_operator.local.raynode import RayNode
from vmray_operator.local.tools import tool_path
from vmray_operator.local.user_data import CloudConfig
from vmray_operator.render.context import RAY_DASHBOARD_PORT

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "vmraycluster.yaml"
RAY_CLI = str(Path(sys.executable).parent / "ray")
WAIT_FOR_HEAD = "until timeout 1 bash -c '</dev/tcp/{}/6379' 2>/dev/null; do sleep 0.2; done"


async def _alive_nodes(url: str) -> int:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/api/v0/nodes?limit=100", timeout=aiohttp.ClientTimeout(total=3)) as response,
        ):
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return 0
    return sum(1 for n in body["data"]["result"]["result"] if n["state"] == "ALIVE")


async def floor(workdir: Path) -> float:
    """Three namespaces, `ray start` by hand: head first, workers pointed at it."""
    network = VmNetwork("f100", "10.215.0.0/16")
    await network.setup()
    nodes: list[RayNode] = []
    try:
        started = time.monotonic()
        head_ip = "10.215.0.2"
        for i, address in enumerate([head_ip, "10.215.0.3", "10.215.0.4"]):
            netns = await network.attach(f"node{i}", address)
            head = i == 0
            ray = ["env", "RAY_USAGE_STATS_ENABLED=0", RAY_CLI, "start", "--num-cpus=1"]
            runcmd = (
                [[*ray, "--head", "--port=6379", "--dashboard-host=0.0.0.0"]]
                if head
                else [["sh", "-c", WAIT_FOR_HEAD.format(head_ip)], [*ray, f"--address={head_ip}:6379"]]
            )
            config = CloudConfig(files=[], runcmd=runcmd, mount_points=[])
            node = RayNode(f"floor-{i}", netns, address, config, workdir / f"n{i}", Path(f"/tmp/vrf100/{i}"))
            node.start()
            nodes.append(node)
        while await _alive_nodes(f"http://{head_ip}:{RAY_DASHBOARD_PORT}") < 3:
            await asyncio.sleep(0.2)
        return time.monotonic() - started
    finally:
        for node in nodes:
            await node.stop(functools.partial(network.pids, node.netns), 0)
            node.remove_disk()
        await network.teardown()


def through_the_operator(workdir: Path) -> float:
    local = cloud.up(workdir / "cloud", simulator="ray")
    try:
        cloud.start_operator(local.state_dir, local.kubeconfig)
        kubectl = [str(tool_path("kubectl")), "--kubeconfig", str(local.kubeconfig)]
        time.sleep(3)  # the operator's start-up is not part of the measure
        started = time.monotonic()
        subprocess.run([*kubectl, "apply", "-f", str(SAMPLE)], check=True, capture_output=True)
        subprocess.run(
            [
                *kubectl,
                "wait",
                "--for=condition=Ready",
                "vmraycluster/test-ray",
                "-n",
                cloud.DEMO_NAMESPACE,
                "--timeout=600s",
            ],
            check=True,
            capture_output=True,
        )
        return time.monotonic() - started
    finally:
        cloud.down(workdir / "cloud")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vmray-floor-", dir=Path.cwd()) as tmp:
        by_hand = asyncio.run(floor(Path(tmp)))
        operated = through_the_operator(Path(tmp))
    print(f"3 Ray nodes by hand in namespaces (the floor): {by_hand:.1f} s")
    print(f"kubectl apply -> Ready through the operator:    {operated:.1f} s")
    print(f"ratio: {operated / by_hand:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
