"""A coalescing work queue: one reconcile per key at a time, many requests folded into one run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from vmray_operator import metrics

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("vmray.queue")


class WorkQueue(Generic[K]):
    """Requests for a key that is being worked on mark it dirty; it runs once more afterwards.
    The handler returns seconds until it wants to run again, or None. Failures back off exponentially."""

    def __init__(
        self,
        handler: Callable[[K], Awaitable[float | None]],
        workers: int = 8,
        max_backoff: float = 60.0,
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._max_backoff = max_backoff
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

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
            self._dirty.add(key)
        elif key not in self._queued:
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
        self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-worker-{i}") for i in range(self._workers)]

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
            self._active.add(key)
            again: float | None
            started = time.monotonic()
            try:
                again = await self._handler(key)
                self._failures.pop(key, None)
                metrics.RECONCILES.labels("success").inc()
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.RECONCILES.labels("error").inc()
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                again = min(self._max_backoff, 0.5 * 2 ** (failures - 1))
                log.exception("reconcile of %s failed (attempt %d); retrying in %.1f s", key, failures, again)
            finally:
                metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif again is not None:
                self.add(key, again)
