"""SIGKILL the operator at random moments while clusters are created, scaled the way Ray's autoscaler
scales them, and deleted; after every kill it starts again. Once the driver stops and the operator has
caught up, the VMs must be exactly what the specs ask for: none missing, none extra, none orphaned.

CI runs 30 kills; VMRAY_RELIABILITY_LONG=1 runs 200 (VMRAY_RELIABILITY_KILLS sets any number).
VMRAY_RELIABILITY_SEED repeats a run's random choices (its seed is printed)."""

from __future__ import annotations

import asyncio
import random
import string
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import FIGURES
from tests.reliability.conftest import (
    WORKER,
    OperatorProcess,
    leftovers,
    seeded_random,
    settled,
    sized,
    small_cluster,
)
from vmray_operator.api import contract
from vmray_operator.conditions import is_true
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.render import names

pytestmark = pytest.mark.simulator

KILLS = sized("KILLS", 30, 200)
MAX_WORKERS = 4
LIVE_CLUSTERS = 3  # the driver keeps at most this many clusters at once


@dataclass
class Driver:
    """Plays the users and Ray's autoscaler: creates clusters, merge-patches autoscaler_desired_workers
    (new `<cluster>-w-<8 chars>` names, or null to remove one) and deletes clusters."""

    kube: Kube
    namespace: str
    rng: random.Random
    live: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    created: int = 0
    scaled_up: int = 0
    scaled_down: int = 0

    def worker_name(self, cluster: str) -> str:
        alphabet = string.ascii_lowercase + string.digits
        return names.worker_vm_name(cluster, "".join(self.rng.choice(alphabet) for _ in range(8)))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
            await asyncio.sleep(self.rng.uniform(0.05, 0.5))

    async def step(self) -> None:
        choice = self.rng.random()
        if not self.live or (choice < 0.25 and len(self.live) < LIVE_CLUSTERS):
            await self.create()
        elif choice < 0.35:
            await self.delete(self.rng.choice(self.live))
        else:
            await self.scale(self.rng.choice(self.live))

    async def create(self) -> None:
        name = f"crash-{self.created}"
        self.created += 1
        body = small_cluster(self.namespace, name, min_workers=self.rng.choice((1, 2)), max_workers=MAX_WORKERS)
        await self.kube.create(r.VMRAYCLUSTERS, body, self.namespace)
        self.live.append(name)

    async def delete(self, name: str) -> None:
        await self.kube.delete(r.VMRAYCLUSTERS, name, self.namespace)
        self.live.remove(name)
        self.deleted.append(name)

    async def scale(self, name: str) -> None:
        cluster = await self.kube.get(r.VMRAYCLUSTERS, name, self.namespace)
        assert cluster is not None, f"{name} vanished although it was never deleted"
        if contract.HEAD_NOUNCE_LABEL not in (cluster["metadata"].get("labels") or {}):
            return  # not adopted yet: Ray's autoscaler only scales a cluster the operator has taken on
        desired: dict[str, str] = cluster["spec"].get("autoscaler_desired_workers") or {}
        patch: dict[str, str | None] = {}
        if desired and (len(desired) >= MAX_WORKERS or self.rng.random() < 0.45):
            for worker in self.rng.sample(sorted(desired), k=self.rng.choice((1, 1, 2)) if len(desired) > 1 else 1):
                patch[worker] = None
            self.scaled_down += len(patch)
        else:
            for _ in range(min(self.rng.choice((1, 1, 2)), MAX_WORKERS - len(desired))):
                patch[self.worker_name(name)] = WORKER
            self.scaled_up += len(patch)
        await self.kube.patch(r.VMRAYCLUSTERS, name, {"spec": {"autoscaler_desired_workers": patch}}, self.namespace)


def _cluster_of(body: dict[str, Any]) -> str | None:
    return (body["metadata"].get("labels") or {}).get(contract.LABEL_CLUSTER)


async def problems(kube: Kube, namespace: str, driver: Driver) -> list[str]:
    """Everything that differs from the desired state; empty once the operator has caught up."""
    found: list[str] = []
    vms = await kube.list(r.VIRTUAL_MACHINES, namespace)
    clusters = {c["metadata"]["name"]: c for c in await kube.list(r.VMRAYCLUSTERS, namespace)}
    wanted: dict[str, tuple[str, str]] = {}  # VM name -> (cluster, cluster uid)
    for name in driver.live:
        cluster = clusters.get(name)
        if cluster is None:
            found.append(f"cluster {name} was never deleted but is gone")
            continue
        meta, spec = cluster["metadata"], cluster["spec"]
        nounce = (meta.get("labels") or {}).get(contract.HEAD_NOUNCE_LABEL)
        if not nounce:
            found.append(f"cluster {name} was never adopted (no head nounce)")
            continue
        desired = set(spec.get("autoscaler_desired_workers") or {})
        head = names.head_vm_name(name, nounce)
        for vm_name in {head, *desired}:
            wanted[vm_name] = (name, meta["uid"])
        have = {vm["metadata"]["name"] for vm in vms if _cluster_of(vm) == name}
        if have != {head, *desired}:
            found.append(
                f"cluster {name}: VMs {sorted(have)} but wants {sorted({head, *desired})} "
                f"(missing {sorted({head, *desired} - have)}, extra {sorted(have - {head, *desired})})"
            )
        status = cluster.get("status") or {}
        if set(status.get("current_workers") or {}) != desired:
            found.append(f"cluster {name}: status.current_workers {sorted(status.get('current_workers') or {})}")
        if not is_true(status.get("conditions"), "Ready"):
            found.append(f"cluster {name} is not Ready: {status.get('conditions')}")
    for vm in vms:
        meta = vm["metadata"]
        vm_name = meta["name"]
        if vm_name not in wanted:
            found.append(f"VM {vm_name} is wanted by no cluster (labels {meta.get('labels')})")
            continue
        if meta.get("deletionTimestamp"):
            found.append(f"VM {vm_name} is being deleted although it is wanted")
        owners = [o["uid"] for o in meta.get("ownerReferences") or [] if o.get("kind") == "VMRayCluster"]
        if owners != [wanted[vm_name][1]]:
            found.append(
                f"VM {vm_name}: owner uids {owners}, its cluster {wanted[vm_name][0]} has {wanted[vm_name][1]}"
            )
    for name in driver.deleted:
        if name in clusters:
            found.append(
                f"deleted cluster {name} still exists (finalizers {clusters[name]['metadata'].get('finalizers')})"
            )
        left = await leftovers(kube, namespace, name)
        if left:
            found.append(f"deleted cluster {name} left {left}")
    return found


@pytest.mark.timeout(max(300, 8 * KILLS + 200))
async def test_sigkill_at_random_moments_never_duplicates_orphans_or_loses_vms(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    rng = seeded_random("crash consistency")
    driver = Driver(kube, namespace, random.Random(rng.getrandbits(64)))
    started = time.monotonic()
    operator_process.start()
    stop = asyncio.Event()
    drive = asyncio.create_task(driver.run(stop))
    during_startup = 0
    try:
        for _ in range(KILLS):
            if rng.random() < 0.25:  # while it starts: discovery, watches, the first reconciles
                during_startup += 1
                await asyncio.sleep(rng.uniform(0.0, 2.0))
            else:  # while it works
                await operator_process.wait_started()
                await asyncio.sleep(rng.uniform(0.0, 2.0))
            assert operator_process.alive, f"the operator exited on its own; see {operator_process.log_path}"
            await operator_process.kill()
            operator_process.start()
            assert not drive.done(), "the driver failed"
    finally:
        stop.set()
        await drive
    await operator_process.wait_started()
    chaos = time.monotonic() - started

    found = await settled(lambda: problems(kube, namespace, driver), timeout=120)
    assert not found, "after the last restart:\n" + "\n".join(found)
    assert operator_process.alive

    # And what is left goes away completely, with the operator that lived through all of it.
    deleted_during_the_run = len(driver.deleted)
    for name in list(driver.live):
        await driver.delete(name)
    found = await settled(lambda: problems(kube, namespace, driver), timeout=120)
    assert not found, "after deleting the remaining clusters:\n" + "\n".join(found)
    assert await kube.list(r.VIRTUAL_MACHINES, namespace) == []
    FIGURES.append(
        f"crash consistency: {operator_process.kills} SIGKILLs ({during_startup} during start-up) in {chaos:.0f} s; "
        f"{driver.created} clusters created, {deleted_during_the_run} deleted, {driver.scaled_up} workers added and "
        f"{driver.scaled_down} removed by merge patches; converged after each phase"
    )
