"""Helpers of the end-to-end tests: Ready sample clusters with real Ray, Ray's own node list, Ray jobs."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.conftest import GUEST_API
from tests.support.clusters import delete_cluster, sample, wait_condition
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube

READY_TIMEOUT = 240.0
RAY_CLI = str(Path(sys.executable).parent / "ray")


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


async def ready_cluster(kube: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    """The sample, with the heads' autoscalers pointed at where the simulated VMs reach the API server."""
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, name, api_server={"location": GUEST_API}, **spec), namespace)
    return await wait_condition(kube, namespace, name, "Ready", timeout=READY_TIMEOUT)


@contextlib.asynccontextmanager
async def ray_cluster(kube: Kube, namespace: str, name: str, **spec: Any) -> AsyncIterator[dict[str, Any]]:
    """A Ready cluster, deleted (and waited for) afterwards: two machines' worth of Ray at once is enough."""
    try:
        yield await ready_cluster(kube, namespace, name, **spec)
    finally:
        await delete_cluster(kube, namespace, name, timeout=180)


async def submit_job(dashboard: str, working_dir: Path, *entrypoint: str) -> subprocess.CompletedProcess[str]:
    """`ray job submit` through the dashboard address, as a data scientist runs it; waits for the job."""
    return await asyncio.to_thread(
        subprocess.run,
        [RAY_CLI, "job", "submit", "--address", dashboard, "--working-dir", str(working_dir), "--", *entrypoint],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
