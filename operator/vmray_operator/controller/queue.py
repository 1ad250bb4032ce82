"""A coalescing work queue: one reconcile per key at a time, many requests folded into one run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from vmray_operator import metrics
from vmray_operator.logs import about_cluster, key_text

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("vmray.queue")


class WorkQueue(Generic[K]):
    """Requests for a key that is being worked on mark it dirty; it runs once more afterwards.
    The handler returns seconds until it wants to run again, or None. Failures back off exponentially.

    Its metrics are client-go's work queue metrics (`name` label) and controller-runtime's reconcile
    metrics (`controller` label), both named `name`; the gauges are read when Prometheus scrapes."""

    def __init__(
        self,
        handler: Callable[[K], Awaitable[float | None]],
        workers: int = 8,
        max_backoff: float = 60.0,
        name: str = metrics.CONTROLLER,
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._max_backoff = max_backoff
        self._name = name
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: dict[K, float] = {}  # key -> when its run started (time.monotonic)
        self._dirty: set[K] = set()
        self._added: dict[K, float] = {}  # key -> when it was added, until its run starts
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._adds = metrics.WORKQUEUE_ADDS.labels(name)
        self._retries = metrics.WORKQUEUE_RETRIES.labels(name)
        self._queue_duration = metrics.WORKQUEUE_QUEUE_DURATION.labels(name)
        self._work_duration = metrics.WORKQUEUE_WORK_DURATION.labels(name)
        self._reconcile_time = metrics.RECONCILE_TIME.labels(name)
        self._results = {
            result: metrics.RECONCILE_TOTAL.labels(name, result) for result in ("success", "error", "requeue_after")
        }
        self._errors = metrics.RECONCILE_ERRORS.labels(name)

    def add(self, key: K, after: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        if after > 0:
            due = loop.time() + after
            existing = self._timers.get(key)
            if existing and existing[0] <= due:
                return
            if existing:
                existing[1].cancel()
            self._timers[key] = (due, loop.call_at(due, self._fire, key))
            return
        if key in self._active:
            if key not in self._dirty:
                self._dirty.add(key)
                self._counted_add(key)
        elif key not in self._queued:
            self._counted_add(key)
            self._enqueue(key)

    def _counted_add(self, key: K) -> None:
        self._adds.inc()
        self._added.setdefault(key, time.monotonic())

    def _enqueue(self, key: K) -> None:
        self._queued.add(key)
        self._queue.put_nowait(key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer:
            timer[1].cancel()
        self._failures.pop(key, None)

    @property
    def idle(self) -> bool:
        return not self._queued and not self._active

    def start(self) -> None:
        self._publish_gauges()
        self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-worker-{i}") for i in range(self._workers)]

    def _publish_gauges(self) -> None:
        metrics.MAX_CONCURRENT_RECONCILES.labels(self._name).set(self._workers)
        metrics.ACTIVE_WORKERS.labels(self._name).set_function(lambda: len(self._active))
        metrics.WORKQUEUE_DEPTH.labels(self._name).set_function(lambda: len(self._queued))
        metrics.WORKQUEUE_UNFINISHED_WORK.labels(self._name).set_function(self._unfinished_seconds)
        metrics.WORKQUEUE_LONGEST_RUNNING.labels(self._name).set_function(self._longest_running_seconds)

    def _unfinished_seconds(self) -> float:
        now = time.monotonic()
        return sum(now - started for started in list(self._active.values()))

    def _longest_running_seconds(self) -> float:
        started = min(list(self._active.values()), default=None)
        return 0.0 if started is None else time.monotonic() - started

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            started = time.monotonic()
            self._queue_duration.observe(started - self._added.pop(key, started))
            self._active[key] = started
            again: float | None
            with about_cluster(key):
                try:
                    again = await self._handler(key)
                    self._failures.pop(key, None)
                    self._results["success" if again is None else "requeue_after"].inc()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self._results["error"].inc()
                    self._errors.inc()
                    failures = self._failures.get(key, 0) + 1
                    self._failures[key] = failures
                    again = min(self._max_backoff, 0.5 * 2 ** (failures - 1))
                    self._retries.inc()
                    log.exception(
                        "reconcile of %s failed (attempt %d); retrying in %.1f s", key_text(key), failures, again
                    )
                finally:
                    elapsed = time.monotonic() - started
                    self._work_duration.observe(elapsed)
                    self._reconcile_time.observe(elapsed)
                    del self._active[key]
            if key in self._dirty:  # added (and counted) while it ran
                self._dirty.discard(key)
                self._enqueue(key)
            elif again is not None:
                self.add(key, again)
