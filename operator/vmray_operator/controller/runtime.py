"""The running operator: the queue, the reconciler and the safety-net resync, started by kopf."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vmray_operator.config import Settings
from vmray_operator.controller.cluster_gauges import CLUSTER_GAUGES
from vmray_operator.controller.queue import WorkQueue
from vmray_operator.controller.rayprobe import RayProber
from vmray_operator.controller.reconciler import Reconciler
from vmray_operator.controller.stores import IndexStores, Key
from vmray_operator.kube.client import Kube

log = logging.getLogger("vmray.controller")


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
