"""Reads a Ray cluster's health and nodes from its dashboard, with a bounded time per request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class RayNodeInfo:
    node_id: str
    ip: str
    alive: bool
    is_head: bool
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RayView:
    """What Ray itself says: reachable or not, and its nodes."""

    reachable: bool
    healthy: bool = False
    version: str | None = None
    nodes: tuple[RayNodeInfo, ...] = ()
    error: str | None = None

    def alive_by_ip(self) -> dict[str, RayNodeInfo]:
        return {n.ip: n for n in self.nodes if n.alive}

    def summary(self) -> dict[str, Any]:
        alive = [n for n in self.nodes if n.alive]
        total: dict[str, float] = {}
        for node in alive:
            for key, value in node.resources.items():
                total[key] = total.get(key, 0.0) + value
        return {
            "version": self.version,
            "alive_nodes": len(alive),
            "cpus": total.get("CPU", 0.0),
            "gpus": total.get("GPU", 0.0),
            "memory_bytes": int(total.get("memory", 0.0)),
        }


class RayDashboard:
    def __init__(self, session: aiohttp.ClientSession, timeout: float = 3.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _get_json(self, url: str) -> Any:
        async with self._session.get(url, timeout=self._timeout) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    async def view(self, dashboard_url: str) -> RayView:
        try:
            async with self._session.get(f"{dashboard_url}/api/gcs_healthz", timeout=self._timeout) as response:
                healthy = response.status == 200 and (await response.text()).strip() == "success"
            if not healthy:
                return RayView(reachable=True, healthy=False, error="GCS is not healthy")
            version, nodes = await asyncio.gather(
                self._get_json(f"{dashboard_url}/api/version"),
                self._get_json(f"{dashboard_url}/api/v0/nodes?limit=10000&detail=true"),
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            return RayView(reachable=False, error=f"{type(error).__name__}: {error}"[:300])
        return RayView(
            reachable=True,
            healthy=True,
            version=str(version.get("ray_version")) if isinstance(version, dict) else None,
            nodes=tuple(_node(n) for n in nodes.get("data", {}).get("result", {}).get("result", [])),
        )


def _node(raw: dict[str, Any]) -> RayNodeInfo:
    return RayNodeInfo(
        node_id=str(raw.get("node_id", "")),
        ip=str(raw.get("node_ip", "")),
        alive=raw.get("state") == "ALIVE",
        is_head=bool(raw.get("is_head_node")),
        resources={str(k): float(v) for k, v in (raw.get("resources_total") or {}).items()},
    )
