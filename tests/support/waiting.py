"""Polling helpers for tests against a live API server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Calls probe until it returns something truthy; fails with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or probe}; last value: {last!r}")
