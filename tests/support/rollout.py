"""Watching a cluster while it is rolled: which VMs went away, in which order, how many at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.clusters import cluster_vms, get_cluster
from tests.support.waiting import wait_for
from vmray_operator.conditions import find, is_true
from vmray_operator.kube.client import Kube

Body = dict[str, Any]


def away(vm: Body | None) -> bool:
    """Draining, being deleted or missing."""
    return (
        vm is None
        or bool(vm["metadata"].get("deletionTimestamp"))
        or (vm.get("spec") or {}).get("powerState") == "PoweredOff"
    )


def unavailable(vm: Body | None) -> bool:
    """Away, or not powered on with an address yet."""
    if vm is None or away(vm):
        return True
    status = vm.get("status") or {}
    return status.get("powerState") != "PoweredOn" or not (status.get("network") or {}).get("primaryIP4")


@dataclass
class Observations:
    """What polling saw while the cluster was rolled."""

    head: str
    uids: dict[str, str]  # the VMs before the change
    samples: int = 0
    most_away: int = 0  # VMs draining, being deleted or missing at the same time
    most_unavailable: int = 0  # the same, or still booting
    touched: list[str] = field(default_factory=list)  # VMs in the order they were first seen away or replaced
    workers_done_before_head: bool | None = None  # at the head's first sighting: every worker new and up
    up_to_date_reasons: set[str] = field(default_factory=set)
    marked_outdated: set[str] = field(default_factory=set)  # VMs the status called outdated

    def record(self, vms: dict[str, Body], cluster: Body | None) -> None:
        self.samples += 1
        self.most_away = max(self.most_away, sum(away(vms.get(n)) for n in self.uids))
        self.most_unavailable = max(self.most_unavailable, sum(unavailable(vms.get(n)) for n in self.uids))
        for name, uid in self.uids.items():
            vm = vms.get(name)
            if name in self.touched or not (unavailable(vm) or (vm and vm["metadata"]["uid"] != uid)):
                continue
            self.touched.append(name)
            if name == self.head:
                self.workers_done_before_head = all(
                    vms.get(w) is not None and vms[w]["metadata"]["uid"] != u and not unavailable(vms[w])
                    for w, u in self.uids.items()
                    if w != self.head
                )
        status = (cluster or {}).get("status") or {}
        condition = find(status.get("conditions"), "UpToDate")
        if condition is not None:
            self.up_to_date_reasons.add(condition["reason"])
        nodes = {self.head: status.get("head_node_status") or {}, **(status.get("current_workers") or {})}
        self.marked_outdated |= {n for n, node in nodes.items() if node.get("outdated")}


@contextlib.asynccontextmanager
async def watching(
    kube: Kube, namespace: str, name: str, replaced: set[str], timeout: float = 90.0
) -> AsyncIterator[Observations]:
    """Polls the cluster's VMs and status every 0.1 s until the block ends; `replaced` says which VMs
    the change should replace: the block waits (up to timeout seconds) for them to be new, up to date and Ready."""
    vms = await cluster_vms(kube, namespace, name)
    head = next(n for n in vms if n.startswith(f"{name}-h-"))
    seen = Observations(head=head, uids={n: vm["metadata"]["uid"] for n, vm in vms.items()})
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            seen.record(await cluster_vms(kube, namespace, name), await get_cluster(kube, namespace, name))
            await asyncio.sleep(0.1)

    task = asyncio.create_task(poll())
    try:
        yield seen

        async def finished() -> Body | None:
            cluster = await get_cluster(kube, namespace, name)
            status = (cluster or {}).get("status") or {}
            if cluster is None or status.get("observed_generation") != cluster["metadata"]["generation"]:
                return None
            if not (is_true(status.get("conditions"), "UpToDate") and is_true(status.get("conditions"), "Ready")):
                return None
            current = await cluster_vms(kube, namespace, name)
            if any(n not in current or current[n]["metadata"]["uid"] == seen.uids[n] for n in replaced):
                return None
            return cluster

        await wait_for(finished, timeout=timeout, what=f"{sorted(replaced)} replaced and {name} up to date")
    finally:
        stop.set()
        await task
    seen.record(await cluster_vms(kube, namespace, name), await get_cluster(kube, namespace, name))
