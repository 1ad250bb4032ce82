"""The running operator: the queue, the reconciler and the safety-net resync, started by kopf."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vmray_operator.api.contract import Body
from vmray_operator.config import Settings
from vmray_operator.controller.cluster_gauges import CLUSTER_GAUGES
from vmray_operator.controller.queue import WorkQueue
from vmray_operator.controller.rayprobe import RayProber
from vmray_operator.controller.reconciler import Reconciler
from vmray_operator.controller.stores import LAST_APPLIED, IndexStores, Key
from vmray_operator.kube.client import Kube

log = logging.getLogger("vmray.controller")


def _essence(body: Body) -> tuple[object, ...]:
    """All of a cluster a reconcile acts on: its spec (by generation) and metadata, not its status."""
    meta = body.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    return (
        meta.get("uid"),
        meta.get("generation"),
        meta.get("labels"),
        annotations,
        meta.get("finalizers"),
        meta.get("deletionTimestamp"),
    )


class Controller:
    def __init__(self, kube: Kube, settings: Settings, vmop_version: str) -> None:
        self.kube = kube
        self.settings = settings
        self.vmop_version = vmop_version
        self.stores = IndexStores()
        self.queue: WorkQueue[Key] = WorkQueue(self._reconcile, workers=settings.workers)
        self.prober = RayProber(self.queue.add) if settings.probe_ray else None
        self.reconciler = Reconciler(kube, self.stores, settings, vmop_version, prober=self.prober)
        self._tasks: list[asyncio.Task[None]] = []
        self._clusters_seen: dict[Key, tuple[object, ...]] = {}

    async def _reconcile(self, key: Key) -> float | None:
        try:
            return await self.reconciler.reconcile(key)
        finally:
            body = self.stores.cluster(key)
            if body is None:
                CLUSTER_GAUGES.forget(key)
            else:
                CLUSTER_GAUGES.note(key, body)

    def enqueue(self, key: Key) -> None:
        self.queue.add(key, after=self.settings.settle)

    def cluster_seen(self, key: Key, body: Body | None) -> None:
        """A watch event of a cluster (body None: it is gone). The operator's own status write coming back needs
        no reconcile of its own (a status written by anyone else does: it is put right); the condition gauges
        follow it all the same."""
        if body is None:
            self._clusters_seen.pop(key, None)
            self.enqueue(key)
            return
        essence = _essence(body)
        if self._clusters_seen.get(key) == essence and self.reconciler.status.wrote(key, body):
            CLUSTER_GAUGES.note(key, body)
            return
        self._clusters_seen[key] = essence
        self.enqueue(key)

    def start(self) -> None:
        self.queue.start()
        self._tasks = [asyncio.create_task(self._resync_loop(), name="resync")]
        log.info("controller started (VM Operator API %s)", self.vmop_version)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.queue.stop()
        if self.prober:
            await self.prober.stop()
        CLUSTER_GAUGES.clear()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            for key in self.stores.cluster_keys():
                self.queue.add(key)
