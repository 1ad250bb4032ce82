"""The work queue: coalescing, one run per key at a time, requeue and back-off."""

from __future__ import annotations

import asyncio

from vmray_operator.controller.queue import WorkQueue


async def test_requests_during_a_run_cause_exactly_one_more_run() -> None:
    runs: list[str] = []
    release = asyncio.Event()

    async def handler(key: str) -> float | None:
        runs.append(key)
        if len(runs) == 1:
            await release.wait()
        return None

    queue: WorkQueue[str] = WorkQueue(handler, workers=4)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.01)
    for _ in range(5):
        queue.add("a")  # while the first run is blocked
    release.set()
    await asyncio.sleep(0.05)
    await queue.stop()
    assert runs == ["a", "a"]


async def test_a_key_never_runs_twice_at_once() -> None:
    active: set[str] = set()
    overlaps: list[str] = []

    async def handler(key: str) -> float | None:
        if key in active:
            overlaps.append(key)
        active.add(key)
        await asyncio.sleep(0.01)
        active.discard(key)
        return None

    queue: WorkQueue[str] = WorkQueue(handler, workers=8)
    queue.start()
    for _ in range(20):
        for key in ("a", "b"):
            queue.add(key)
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.1)
    await queue.stop()
    assert overlaps == []


async def test_requeue_after_and_backoff_on_failure() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def handler(key: str) -> float | None:
        calls.append(loop.time())
        if len(calls) == 1:
            raise RuntimeError("boom")
        if len(calls) == 2:
            return 0.05
        return None

    queue: WorkQueue[str] = WorkQueue(handler, workers=1, max_backoff=0.2)
    queue.start()
    queue.add("k")
    await asyncio.sleep(0.8)
    await queue.stop()
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.19  # the first back-off (0.5 s) capped at max_backoff
    assert calls[2] - calls[1] >= 0.045  # the handler asked to run again after 0.05 s
