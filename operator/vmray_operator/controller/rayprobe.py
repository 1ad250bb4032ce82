"""Asks each cluster's Ray (through its head service) how it is, in the background.

Probing never runs inside a reconcile: one poller per cluster keeps the latest RayView, and wakes the
cluster's reconcile only when what Ray says has changed. A slow or dead dashboard delays nothing else, and
nothing a dashboard answers ends its poller."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
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


def steady(view: RayView | None, expected: frozenset[str]) -> bool:
    """Whether Ray has settled: healthy, every node it lists alive, and a live node at each address where one is
    expected (the cluster's VMs). A VM whose node has not joined yet keeps the cluster unsteady, though Ray does not
    know the node yet, so that the node shows in the status soon after it joins. A dead node that Ray still lists
    keeps it unsteady too: a cluster that lost or replaced a node is watched closely for a while."""
    if view is None or not view.healthy or not all(n.alive for n in view.nodes):
        return False
    return expected <= {n.ip for n in view.nodes if n.alive}


class RayProber:
    def __init__(
        self,
        on_change: Callable[[Key], None],
        interval: float = 1.0,
        steady_interval: float = 10.0,
        timeout: float = 3.0,
        patience: float = 300.0,
    ) -> None:
        self._on_change = on_change
        self._interval = interval
        self._steady_interval = steady_interval
        self._timeout = timeout
        # how long a cluster is asked at the short interval while unsteady: a node that has not joined in this
        # long (a broken setup) is waited for at the steady interval, sparing its head's dashboard
        self._patience = patience
        self._session: aiohttp.ClientSession | None = None
        # the dashboard's URL, Ray's token and whether Ray's activity is wanted, by cluster
        self._targets: dict[Key, tuple[str, str | None, bool]] = {}
        self._views: dict[Key, RayView] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._expected: dict[Key, frozenset[str]] = {}  # the addresses where a node of the cluster should run
        self._wake: dict[Key, asyncio.Event] = {}  # set to end a poller's wait before its interval is over
        # addresses a VM took after Ray was last asked, with when: what the view says of them may be of the node a
        # replaced VM ran there, so it is not believed until Ray is asked again
        self._unconfirmed: dict[Key, dict[str, float]] = {}

    def view(self, key: Key) -> RayView | None:
        """Ray's latest answer; a node at an address that a VM took since Ray was asked does not count as alive."""
        view = self._views.get(key)
        unconfirmed = self._unconfirmed.get(key)
        if view is None or not unconfirmed:
            return view
        nodes = tuple(dataclasses.replace(n, alive=False) if n.ip in unconfirmed else n for n in view.nodes)
        return dataclasses.replace(view, nodes=nodes)

    def watch(
        self,
        key: Key,
        dashboard_url: str | None,
        token: str | None = None,
        activity: bool = False,
        expected: frozenset[str] = frozenset(),
    ) -> None:
        """Starts, moves or stops the poller of a cluster; token: Ray's, for a cluster with token authentication;
        expected: the addresses where a node should run, asked for at the short interval until each has one
        alive (a new one ends the long wait of a steady cluster's poller)."""
        if dashboard_url is None:
            self.forget(key)
            return
        target = (dashboard_url, token, activity)
        task = self._tasks.get(key)
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            log.error("Ray probe of %s had stopped; starting it again", key_text(key), exc_info=task.exception())
        if self._targets.get(key) != target:
            self.forget(key)  # the old view is of another address; a poller restarted in place keeps its view
        added = expected - self._expected.get(key, frozenset())
        self._expected[key] = expected
        if added:
            self._unconfirmed.setdefault(key, {}).update(dict.fromkeys(added, time.monotonic()))
        task = self._tasks.get(key)
        if task is not None and not task.done():
            if added:  # asked at once about the new addresses
                self._wake[key].set()
            return
        self._targets[key] = target
        self._wake[key] = asyncio.Event()
        self._tasks[key] = asyncio.create_task(self._poll(key, *target), name=f"ray-probe-{key}")

    def forget(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        if task:
            task.cancel()
        self._targets.pop(key, None)
        self._views.pop(key, None)
        self._expected.pop(key, None)
        self._wake.pop(key, None)
        self._unconfirmed.pop(key, None)

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _poll(self, key: Key, url: str, token: str | None, activity: bool) -> None:
        wake = self._wake[key]
        dashboard = RayDashboard(self._client_session(), self._timeout, token=token)
        logged: set[str] = set()  # kinds of unexpected errors already logged for this cluster

        def log_once(error: Exception) -> None:
            # a fault of the operator, not of Ray: said once per kind, not at every poll
            if type(error).__name__ not in logged:
                logged.add(type(error).__name__)
                log.exception("Ray probe of %s failed; it goes on polling", key_text(key))

        unsteady_since = time.monotonic()
        while True:
            if wake.is_set():  # a new VM: its node is waited for at the short interval
                unsteady_since = time.monotonic()
            wake.clear()  # a wake-up while Ray is being asked makes the next question come at once
            asked = time.monotonic()
            try:
                view = await dashboard.view(url, activity)
            except Exception as error:
                log_once(error)
                view = unreachable(f"the operator could not probe Ray ({type(error).__name__})")
            try:
                self._record(key, view, asked)
            except Exception as error:
                log_once(error)
            now = time.monotonic()
            settled = steady(view, self._expected.get(key, frozenset()))
            if settled:
                unsteady_since = now
            hurry = not settled and now - unsteady_since < self._patience
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that comes as the
            # wake-up does, and a forgotten poller would go on polling
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval if hurry else self._steady_interval):
                    await wake.wait()

    def _record(self, key: Key, view: RayView, asked: float) -> None:
        """Keeps an answer to a question asked at `asked`; wakes the cluster's reconcile when what it says changed,
        or when it confirms a live node at an address a VM took before the question."""
        changed = _essence(view) != _essence(self._views.get(key))
        self._views[key] = view
        unconfirmed = self._unconfirmed.get(key, {})
        confirmed = {address for address, since in unconfirmed.items() if since <= asked}
        for address in confirmed:
            del unconfirmed[address]
        if changed or any(n.alive and n.ip in confirmed for n in view.nodes):
            self._on_change(key)

    async def stop(self) -> None:
        for key in list(self._tasks):
            task = self._tasks[key]
            self.forget(key)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
