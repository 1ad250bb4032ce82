"""End to end, with real Ray in every simulated VM: the data scientist's and the autoscaler's view."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.ray_clusters import (
    READY_TIMEOUT,
    RayAccess,
    create_cluster,
    grpc_over_tls_answers,
    processes_of,
    ray_access,
    ray_cluster,
    ray_nodes,
    ray_tasks,
    ready_cluster,
    sample_spec_part,
    submit_job,
)
from tests.support.clusters import cluster_vms, delete_cluster, get_cluster, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api.contract import LABEL_CLUSTER, LABEL_ROLE
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local.network import ip
from vmray_operator.render import tls
from vmray_operator.render.monitoring import ROLE_METRICS
from vmray_operator.render.names import ClusterSecret

DEMO_JOB = Path(__file__).resolve().parents[2] / "operator" / "vmray_operator" / "local" / "demo_job"


# Setup commands as people write them, each leaving a file in the node's own /tmp/ray (in the Ray container).
SETUP_COMMANDS = [
    "echo comment-ok > /tmp/ray/setup-comment  # pin the version later",
    "cat > /tmp/ray/setup-heredoc <<'EOF'\nheredoc-ok: $HOME stays as written\nEOF",
    "for part in multi line; do\n  printf '%s-' \"$part\"\ndone > /tmp/ray/setup-multiline",
]
SETUP_FILES = {
    "setup-comment": "comment-ok\n",
    "setup-heredoc": "heredoc-ok: $HOME stays as written\n",
    "setup-multiline": "multi-line-",
}

# One task on every alive node reads the files the setup commands left there.
SETUP_FILES_JOB = """
import json, socket, sys
from pathlib import Path
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

@ray.remote(num_cpus=0)
def files(names):
    found = {n: (Path("/tmp/ray") / n).read_text() for n in names if (Path("/tmp/ray") / n).exists()}
    return socket.gethostname(), found

ray.init()
nodes = [n for n in ray.nodes() if n["Alive"]]
strategy = lambda n: NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
for host, found in ray.get([files.options(scheduling_strategy=strategy(n)).remote(sys.argv[1:]) for n in nodes]):
    print("setup files on", host, json.dumps(found, sort_keys=True))
"""


async def test_sample_runs_ray_and_status_agrees_with_ray(
    kube: Kube, namespace: str, operator: Controller, tmp_path: Path
) -> None:
    common = sample_spec_part("common_node_config", setup_commands=SETUP_COMMANDS)
    async with ray_cluster(kube, namespace, "e2e", common_node_config=common) as cluster:
        await _check_status_and_job(kube, namespace, cluster)
        await _check_mutual_tls(kube, namespace, cluster, tmp_path)
        await _check_setup_commands_ran_on_every_node(kube, namespace, cluster, tmp_path)
        await _check_prometheus_finds_every_node_s_ray_metrics(kube, namespace, cluster)


# Gauges every Ray node's agent exports (Ray 2.60's reporter agent), labelled with the node's address.
NODE_METRICS = ("ray_node_cpu_utilization", "ray_node_mem_used")


async def _scrape(session: aiohttp.ClientSession, address: str, port: int) -> dict[str, set[str]]:
    """One Prometheus scrape of a target: the node addresses (label ip) each metric family has samples of."""
    async with session.get(f"http://{address}:{port}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as response:
        assert response.status == 200, f"{address}:{port} answered {response.status}"
        text = await response.text()
    return {
        family.name: {s.labels.get("ip", "") for s in family.samples} for family in text_string_to_metric_families(text)
    }


async def _check_prometheus_finds_every_node_s_ray_metrics(kube: Kube, namespace: str, cluster: dict[str, Any]) -> None:
    """Found only through what the operator publishes, as Prometheus' endpointslice role finds it: the cluster's
    metrics Service (by its labels), the EndpointSlices of that Service, and the addresses and port they list. A
    scrape of each returns Ray's node metrics of that very node."""
    name = cluster["metadata"]["name"]
    (service,) = await kube.list(r.SERVICES, namespace, f"{LABEL_CLUSTER}={name},{LABEL_ROLE}={ROLE_METRICS}")
    slices = await kube.list(r.ENDPOINT_SLICES, namespace, f"kubernetes.io/service-name={service['metadata']['name']}")
    targets = {
        (address, port["port"])
        for s in slices
        for e in s.get("endpoints") or []
        for address in e["addresses"]
        for port in s["ports"]
        if port["name"] == "metrics"
    }
    status = cluster["status"]
    nodes = {status["head_node_status"]["ip"], *(w["ip"] for w in status["current_workers"].values())}
    assert {address for address, _ in targets} == nodes

    async with aiohttp.ClientSession() as session:
        for address, port in sorted(targets):

            async def node_metrics(address: str = address, port: int = port) -> dict[str, set[str]] | None:
                try:  # Ray's agent opens the port, and reports its first values, a little after the node joins
                    families = await _scrape(session, address, port)
                except aiohttp.ClientConnectionError:
                    return None
                return families if all(address in families.get(m, set()) for m in NODE_METRICS) else None

            await wait_for(node_metrics, timeout=60, interval=2, what=f"Ray's node metrics at {address}:{port}")


async def _check_setup_commands_ran_on_every_node(
    kube: Kube, namespace: str, cluster: dict[str, Any], directory: Path
) -> None:
    """The setup commands, with a comment, a heredoc and several lines, ran as a shell runs them on every node."""
    (directory / "setup_files.py").write_text(SETUP_FILES_JOB)
    job = await submit_job(await ray_access(kube, cluster), directory, "python", "setup_files.py", *SETUP_FILES)
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    found = {
        line.split()[3]: json.loads(line.split(" ", 4)[4])
        for line in job.stdout.splitlines()
        if line.startswith("setup files on ")
    }
    assert set(found) == set(await cluster_vms(kube, namespace, "e2e"))
    for vm_name, files in found.items():
        assert files == SETUP_FILES, vm_name


async def _check_mutual_tls(kube: Kube, namespace: str, cluster: dict[str, Any], directory: Path) -> None:
    """The sample has enable_tls: the head's GCS, reached at the load balancer as the workers reach it, speaks
    TLS with a certificate from the cluster's CA, and answers only a client with a certificate of that CA."""
    secret = await kube.get(r.SECRETS, ClusterSecret.CERTIFICATES.of("e2e"), namespace)
    assert secret is not None
    entries = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    lb_ip, head_ip = cluster["status"]["vm_service_status"]["ip"], cluster["status"]["head_node_status"]["ip"]
    client = (entries[tls.cert_key(head_ip)], entries[tls.key_key(head_ip)])
    port = cluster["spec"]["head_node"]["port"]
    ca = entries[tls.CA_CERT_KEY]
    answered, names = await asyncio.to_thread(grpc_over_tls_answers, lb_ip, port, ca, client, directory)
    assert answered
    assert {lb_ip, head_ip} <= names
    refused, _ = await asyncio.to_thread(grpc_over_tls_answers, lb_ip, port, ca, None, directory)
    assert not refused


async def _dashboard_status(access: RayAccess) -> None:
    headers = {"Authorization": f"Bearer {access.token}"} if access.token else {}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{access.dashboard}/api/v0/nodes", timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        assert response.status == 200, f"the dashboard answered {response.status}"


async def _check_status_and_job(kube: Kube, namespace: str, cluster: dict[str, Any]) -> None:
    status = cluster["status"]
    assert status["cluster_state"] == "running"
    assert len(status["current_workers"]) == 2

    access = await ray_access(kube, cluster)
    nodes = await ray_nodes(access)
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

    # Without Ray's token the dashboard takes no job: anyone who reaches the load balancer could run code.
    assert access.token is not None
    assert status["endpoints"]["auth_token_secret"] == "e2e-ray-auth"
    refused = await submit_job(RayAccess(access.dashboard, None), DEMO_JOB, "python", "demo_job.py")
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr or "uthenticat" in refused.stdout + refused.stderr
    with pytest.raises(AssertionError, match="401"):
        await _dashboard_status(RayAccess(access.dashboard, None))

    # With it, a job submitted through the dashboard address the status gives runs a task on every node.
    job = await submit_job(access, DEMO_JOB, "python", "demo_job.py")
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    assert "3 of 3 Ray nodes took part" in job.stdout
    vm_names = {n for n in await cluster_vms(kube, namespace, "e2e")}
    answered = {line.rsplit(" ", 1)[-1] for line in job.stdout.splitlines() if "answered from" in line}
    assert answered == vm_names  # each task ran on its own VM, named like it


# A task placed on the worker that is about to go; it outlives the moment the worker is removed.
LONG_TASK_JOB = """
import socket, sys, time
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

ray.init()
node = next(n for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] == sys.argv[1])

@ray.remote(num_cpus=1, max_retries=3)
def long_task(seconds):
    time.sleep(seconds)
    return socket.gethostname()

ref = long_task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)).remote(15)
print("long task result from", ray.get(ref))
"""


async def test_scaling_adds_a_node_and_removes_one_after_a_drain(
    kube: Kube, namespace: str, operator: Controller, tmp_path: Path
) -> None:
    async with ray_cluster(kube, namespace, "scaled") as cluster:
        await _scale_up_and_down(kube, namespace, cluster, tmp_path)


async def _scale_up_and_down(kube: Kube, namespace: str, cluster: dict[str, Any], tmp_path: Path) -> None:
    access = await ray_access(kube, cluster)
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
    assert any(n["node_ip"] == extra_ip and n["state"] == "ALIVE" for n in await ray_nodes(access))

    # Work on the worker when it is removed is not lost: it finishes while Ray drains the node, or Ray
    # runs it again elsewhere.
    (tmp_path / "long_task.py").write_text(LONG_TASK_JOB)
    job = asyncio.create_task(submit_job(access, tmp_path, "python", "long_task.py", extra_ip))
    extra_node = next(
        n["node_id"] for n in await ray_nodes(access) if n["node_ip"] == extra_ip and n["state"] == "ALIVE"
    )

    async def running_on_the_worker() -> bool:
        tasks = await ray_tasks(access)
        return any(t["name"] == "long_task" and t["state"] == "RUNNING" and t["node_id"] == extra_node for t in tasks)

    await wait_for(running_on_the_worker, timeout=120, interval=0.5, what="the long task running on the worker")
    await kube.patch(
        r.VMRAYCLUSTERS, "scaled", {"spec": {"autoscaler_desired_workers": {"scaled-w-extra000": None}}}, namespace
    )

    async def removed() -> bool:
        return "scaled-w-extra000" not in await cluster_vms(kube, namespace, "scaled")

    await wait_for(removed, timeout=120, what="the removed worker's VM gone")
    gone = [n for n in await ray_nodes(access) if n["node_ip"] == extra_ip]
    assert gone
    assert gone[-1]["state"] == "DEAD"
    assert "draining" in (gone[-1].get("state_message") or ""), gone[-1]  # SIGTERM drain, not a crash
    result = await job
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "long task result from scaled-" in result.stdout
    await wait_condition(kube, namespace, "scaled", "Ready", timeout=60)


async def test_a_failing_setup_command_shows_in_the_cluster_status(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    """The head's setup command fails: no Ray starts, and the cluster's status says which command failed, as
    the head's guest reported it (VM Operator's GuestBootstrap condition), instead of restarting in silence."""
    failing = "ls /nonexistent/model-cache  # the cache must be there"
    head = sample_spec_part("head_node", setup_commands=["echo preparing the head", failing])
    workers = sample_spec_part("common_node_config")
    workers["available_node_types"]["ray.worker.default"]["min_workers"] = 0  # nothing to join a head that fails
    await create_cluster(kube, namespace, "broken", head_node=head, common_node_config=workers)

    async def head_failed() -> dict[str, Any] | None:
        current = await get_cluster(kube, namespace, "broken")
        head_status = (current or {}).get("status", {}).get("head_node_status", {})
        return current if head_status.get("vm_status") == "failure" else None

    try:
        cluster = await wait_for(head_failed, timeout=READY_TIMEOUT, what="the head's setup failure in the status")
        status = cluster["status"]
        assert status["head_node_status"]["reason"] == "SetupCommandFailed"
        assert status["cluster_state"] == "failed"
        head_ready = next(c for c in status["conditions"] if c["type"] == "HeadReady")
        assert head_ready["reason"] == "SetupCommandFailed"
        # the TLS fetch and the copy of the autoscaler's config come first
        assert head_ready["message"].endswith(f": setup command 4 of 4 failed with exit status 2: {failing}")
        (vm,) = (await cluster_vms(kube, namespace, "broken")).values()
        guest = next(c for c in vm["status"]["conditions"] if c["type"] == "GuestBootstrap")
        assert (guest["status"], guest["reason"]) == ("False", "SetupCommandFailed")
    finally:
        await delete_cluster(kube, namespace, "broken", timeout=180)


async def test_deleting_the_cluster_leaves_no_ray_process(
    kube: Kube, namespace: str, operator: Controller, simulator: Path
) -> None:
    await ready_cluster(kube, namespace, "short")
    vms = await cluster_vms(kube, namespace, "short")
    await delete_cluster(kube, namespace, "short", timeout=180)
    for name in vms:
        guest_dir = simulator / "vms" / f"{namespace}_{name}"
        assert not guest_dir.exists(), f"{guest_dir} still there"
    assert processes_of(set(vms)) == []
    assert await kube.list(r.VIRTUAL_MACHINES, namespace, "vmray.broadcom.com/cluster=short") == []
    assert "vmray" not in await ip("netns", "pids", "none", check=False)
