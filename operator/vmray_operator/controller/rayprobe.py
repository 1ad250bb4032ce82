"""Asks each cluster's Ray (through its head service) how it is, in the background.

Probing never runs inside a reconcile: one poller per cluster keeps the latest RayView, and wakes the
cluster's reconcile only when what Ray says has changed. A slow or dead dashboard delays nothing else, and
nothing a dashboard answers ends its poller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp

from vmray_operator.controller.stores import Key
from vmray_operator.logs import key_text
from vmray_operator.ray.client import RayDashboard
from vmray_operator.ray.view import RayView, unreachable

log = logging.getLogger("vmray.rayprobe")


def _essence(view: RayView | None) -> object:
    """What a status is made of; resource counts of unchanged nodes do not wake anyone."""
    if view is None:
        return None
    nodes = tuple(sorted((n.node_id, n.ip, n.alive, n.is_head) for n in view.nodes))
    # of what Ray does, what a decision reads: whether it is idle, and which jobs run
    doing = (view.activity.idle, view.activity.active_jobs) if view.activity else None
    return (view.reachable, view.healthy, view.version, view.error, nodes, doing)


class RayProber:
    def __init__(
        self,
        on_change: Callable[[Key], None],
        interval: float = 2.0,
        steady_interval: float = 10.0,
        timeout: float = 3.0,
    ) -> None:
        self._on_change = on_change
        self._interval = interval
        self._steady_interval = steady_interval
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        # the dashboard's URL, Ray's token and whether Ray's activity is wanted, by cluster
        self._targets: dict[Key, tuple[str, str | None, bool]] = {}
        self._views: dict[Key, RayView] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}

    def view(self, key: Key) -> RayView | None:
        return self._views.get(key)

    def watch(self, key: Key, dashboard_url: str | None, token: str | None = None, activity: bool = False) -> None:
        """Starts, moves or stops the poller of a cluster; token: Ray's, for a cluster with token authentication."""
        if dashboard_url is None:
            self.forget(key)
            return
        target = (dashboard_url, token, activity)
        task = self._tasks.get(key)
        if self._targets.get(key) == target and task is not None and not task.done():
            return
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            log.error("Ray probe of %s had stopped; starting it again", key_text(key), exc_info=task.exception())
        if self._targets.get(key) != target:
            self.forget(key)  # the old view is of another address; a poller restarted in place keeps its view
        self._targets[key] = target
        self._tasks[key] = asyncio.create_task(self._poll(key, *target), name=f"ray-probe-{key}")

    def forget(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        if task:
            task.cancel()
        self._targets.pop(key, None)
        self._views.pop(key, None)

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _poll(self, key: Key, url: str, token: str | None, activity: bool) -> None:
        dashboard = RayDashboard(self._client_session(), self._timeout, token=token)
        logged: set[str] = set()  # kinds of unexpected errors already logged for this cluster

        def log_once(error: Exception) -> None:
            # a fault of the operator, not of Ray: said once per kind, not at every poll
            if type(error).__name__ not in logged:
                logged.add(type(error).__name__)
                log.exception("Ray probe of %s failed; it goes on polling", key_text(key))

        while True:
            try:
                view = await dashboard.view(url, activity)
            except Exception as error:
                log_once(error)
                view = unreachable(f"the operator could not probe Ray ({type(error).__name__})")
            try:
                self._record(key, view)
            except Exception as error:
                log_once(error)
            steady = view.healthy and all(n.alive for n in view.nodes)
            await asyncio.sleep(self._steady_interval if steady else self._interval)

    def _record(self, key: Key, view: RayView) -> None:
        changed = _essence(view) != _essence(self._views.get(key))
        self._views[key] = view
        if changed:
            self._on_change(key)

    async def stop(self) -> None:
        for key in list(self._tasks):
            task = self._tasks[key]
            self.forget(key)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
