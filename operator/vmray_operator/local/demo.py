"""`make demo`: the local cloud in ray mode, the operator, the seed's sample cluster, a Ray job on it."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vmray_operator.conditions import find
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import cloud, controlplane, processes
from vmray_operator.local.tools import tool_path

SAMPLE = Path("crds/samples/vmraycluster.yaml")
CLUSTER, NAMESPACE = "test-ray", cloud.DEMO_NAMESPACE
READY_TIMEOUT = 600.0


@contextmanager
def phase(name: str, timings: list[tuple[str, float]]) -> Iterator[None]:
    print(f"==> {name}", flush=True)
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    timings.append((name, elapsed))
    print(f"    done in {elapsed:.1f} s", flush=True)


def _kubectl(kubeconfig: Path, *args: str) -> str:
    result = subprocess.run(
        [str(tool_path("kubectl")), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


async def _wait_ready(kubeconfig: Path) -> dict[str, Any]:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    last = ""
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            cluster = await kube.get(r.VMRAYCLUSTERS, CLUSTER, NAMESPACE) or {}
            status = cluster.get("status") or {}
            ready = find(status.get("conditions"), "Ready") or {}
            line = (
                f"{status.get('cluster_state', 'pending')}: {ready.get('reason', '')} {ready.get('message', '')}"
            ).strip()
            if line != last:
                print(f"    {line}", flush=True)
                last = line
            if ready.get("status") == "True":
                return cluster
            await asyncio.sleep(1)
    finally:
        kube.close()
    raise TimeoutError(f"{CLUSTER} was not Ready after {READY_TIMEOUT:.0f} s; see .local-cloud/logs")


def _ray_token_env(kubeconfig: Path, cluster: dict[str, Any]) -> dict[str, str]:
    """What a data scientist is handed besides the address: Ray's token, from the Secret the status names."""
    secret = cluster["status"]["endpoints"].get("auth_token_secret")
    if not secret:
        return {}
    token = _kubectl(kubeconfig, "get", "secret", secret, "-n", NAMESPACE, "-o", "jsonpath={.data.token}")
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": base64.b64decode(token).decode()}


def _submit_job(dashboard: str, token_env: dict[str, str]) -> bool:
    """`ray job submit` of the demo job, as a data scientist runs it; prints where its tasks ran."""
    job = subprocess.run(
        [
            str(Path(sys.executable).parent / "ray"),
            "job",
            "submit",
            "--address",
            dashboard,
            "--working-dir",
            str(Path(__file__).parent / "demo_job"),
            "--",
            "python",
            "demo_job.py",
        ],
        env={**os.environ, **token_env},
        capture_output=True,
        text=True,
        check=False,
    )
    for line in job.stdout.splitlines():
        if "answered from" in line or "took part" in line:
            print(f"    {line.strip()}")
    if job.returncode != 0:
        print(job.stdout[-3000:], job.stderr[-3000:], file=sys.stderr)
    return job.returncode == 0


def _summary(kubeconfig: Path, cluster: dict[str, Any], timings: list[tuple[str, float]], started: float) -> None:
    dashboard = cluster["status"]["endpoints"]["dashboard"]
    secret = cluster["status"]["endpoints"].get("auth_token_secret")
    print()
    print(_kubectl(kubeconfig, "get", "vmraycluster", "-n", NAMESPACE, "-o", "wide"))
    print(
        f"Ray dashboard: {dashboard} (reachable from this machine; from elsewhere: "
        f"ssh -L 8265:{dashboard.split('//')[1].split(':')[0]}:8265 <this host>, then http://localhost:8265)"
    )
    if secret:
        print(
            f"Ray's token:   kubectl --kubeconfig {kubeconfig} get secret {secret} -n {NAMESPACE} "
            "-o jsonpath='{.data.token}' | base64 -d  (RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<it> ray job submit ...)"
        )
    print(f"kubectl:       kubectl --kubeconfig {kubeconfig} get vmraycluster,vm,vmservice -n {NAMESPACE}")
    print("phases:")
    for name, seconds in timings:
        print(f"  {seconds:6.1f} s  {name}")
    print(f"  {time.monotonic() - started:6.1f} s  total; the cluster stays up until `make demo-down`")


def up(state_dir: Path) -> int:
    timings: list[tuple[str, float]] = []
    started = time.monotonic()
    if processes.recorded(state_dir):
        print(f"a local cloud is already running in {state_dir}; `make demo-down` stops it", file=sys.stderr)
        return 1
    with phase("starting the local cloud (control plane, VM Operator simulator in ray mode)", timings):
        local = cloud.up(state_dir, simulator="ray")
    kubeconfig = local.kubeconfig
    with phase("starting the operator", timings):
        cloud.start_operator(state_dir, kubeconfig, env=local.operator_env())
    with phase(f"applying {SAMPLE} (kubectl apply)", timings):
        print("    " + _kubectl(kubeconfig, "apply", "-f", str(SAMPLE)).strip())
    with phase("waiting for the cluster to be Ready", timings):
        cluster = asyncio.run(_wait_ready(kubeconfig))
    dashboard = cluster["status"]["endpoints"]["dashboard"]
    with phase(f"submitting a Ray job: ray job submit --address {dashboard}, with Ray's token", timings):
        if not _submit_job(dashboard, _ray_token_env(kubeconfig, cluster)):
            return 1
    _summary(kubeconfig, cluster, timings, started)
    return 0


def down(state_dir: Path) -> int:
    leftovers = cloud.down(state_dir)
    if leftovers:
        print(f"removed leftovers: {', '.join(leftovers)}")
    print("demo stopped: no process, namespace or link of it is left")
    return 0


__all__ = ["controlplane", "down", "up"]
