"""The dashboard client and the prober against a real HTTP server on loopback that misbehaves in every way a
head's dashboard can: each answer becomes a view that says what is wrong, and probing goes on."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.support.waiting import wait_for
from vmray_operator.controller.rayprobe import RayProber, steady
from vmray_operator.controller.stores import Key
from vmray_operator.ray.client import MAX_ANSWER_BYTES, RayDashboard
from vmray_operator.ray.view import RayNodeInfo, RayView

KEY: Key = ("deploy-ray", "test-ray")
TIMEOUT = 0.5  # the slow answer never comes before the test releases it, so no duration is measured
HEAD_ID = "3f0c4b8e6d0a4e1b9c7f2a5d8e1b4c7a0d3f6e9b2c5a8d1e4f7a0b3c"
VERSION = {"version": "4", "ray_version": "2.60.0", "ray_commit": "abc123", "session_name": "session_2026"}
NODES = {
    "result": True,
    "msg": "",
    "data": {
        "result": {
            "total": 1,
            "num_after_truncation": 1,
            "num_filtered": 1,
            "result": [
                {
                    "node_id": HEAD_ID,
                    "node_ip": "10.212.0.11",
                    "is_head_node": True,
                    "state": "ALIVE",
                    "node_name": "10.212.0.11",
                    "resources_total": {"CPU": 2.0, "memory": 4294967296.0},
                    "labels": {},
                }
            ],
        }
    },
}
HUGE = 20 * 1024 * 1024


class Dashboard:
    """Ray's dashboard routes, answering as `mode` says."""

    def __init__(self) -> None:
        self.mode = "good"
        self.release = asyncio.Event()  # a slow answer waits for it
        self.requests = 0

    async def health(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.mode == "slow":
            await self.release.wait()
        if self.mode == "gcs-down":
            return web.Response(status=503, text="GCS is unavailable")
        if self.mode == "gcs-not-success":
            return web.Response(text="Redis connection refused")
        if self.mode == "disconnect":
            assert request.transport is not None
            request.transport.close()
        return web.Response(text="success")

    async def version(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "not-json":
            return web.Response(text="<html><body>Ray Dashboard</body></html>", content_type="text/html")
        return web.json_response(VERSION)

    async def nodes(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "wrong-shape":
            return web.json_response({"result": True, "msg": "", "data": [NODES["data"]]})
        if self.mode == "wrong-types":
            return web.json_response({"result": True, "msg": "", "data": {"result": {"result": [{"node_id": 7}]}}})
        if self.mode == "http-error":
            return web.json_response({"result": False, "msg": "Failed to query the GCS", "data": {}}, status=500)
        if self.mode == "huge":
            return web.Response(body=b" " * HUGE, content_type="application/json")
        if self.mode == "huge-chunked":
            return await self._stream(request, HUGE)
        if self.mode == "cut-short":
            return await self._cut_short(request)
        if self.mode == "gzip":
            body = gzip.compress(json.dumps(NODES).encode())
            return web.Response(body=body, content_type="application/json", headers={"Content-Encoding": "gzip"})
        return web.json_response(NODES)

    async def _stream(self, request: web.Request, size: int) -> web.StreamResponse:
        """A body without a length, written until `size` bytes or until the client hangs up."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * (256 * 1024)
        try:
            for _ in range(size // len(chunk)):
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading, as it should
        return response

    async def _cut_short(self, request: web.Request) -> web.StreamResponse:
        """Promises a body, sends part of it and closes the connection."""
        text = json.dumps(NODES).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(text)
        await response.prepare(request)
        await response.write(text[:20])
        assert request.transport is not None
        request.transport.close()
        return response


@pytest.fixture
async def dashboard() -> AsyncIterator[tuple[Dashboard, str]]:
    server = Dashboard()
    app = web.Application()
    app.router.add_get("/api/gcs_healthz", server.health)
    app.router.add_get("/api/version", server.version)
    app.router.add_get("/api/v0/nodes", server.nodes)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield server, f"http://127.0.0.1:{port}"
    server.release.set()
    await runner.cleanup()


async def _view(url: str) -> RayView:
    async with aiohttp.ClientSession() as session:
        return await RayDashboard(session, timeout=TIMEOUT).view(url)


# mode -> (reachable, what the error says)
MISBEHAVIOURS = {
    "not-json": (True, "unexpected answer from /api/version: not JSON"),
    "wrong-shape": (True, "unexpected answer from /api/v0/nodes: data is a list, not an object"),
    "wrong-types": (True, "unexpected answer from /api/v0/nodes: node 0 node_id is a number, not a string"),
    "http-error": (True, "/api/v0/nodes answered HTTP 500: Failed to query the GCS"),
    "gcs-down": (True, "GCS is not healthy (/api/gcs_healthz answered HTTP 503)"),
    "gcs-not-success": (True, "GCS is not healthy (/api/gcs_healthz did not answer success)"),
    "huge": (True, f"more than {MAX_ANSWER_BYTES} bytes: too large"),
    "huge-chunked": (True, f"more than {MAX_ANSWER_BYTES} bytes: too large"),
    "gzip": (True, "unexpected answer from /api/v0/nodes: not JSON"),
    "slow": (False, f"no answer within {TIMEOUT:g} s"),
    "cut-short": (False, "ClientPayloadError"),
    "disconnect": (False, "ServerDisconnectedError"),
}


async def test_a_good_dashboard_gives_a_healthy_view(dashboard: tuple[Dashboard, str]) -> None:
    view = await _view(dashboard[1])
    assert view.healthy
    assert view.error is None
    assert view.version == "2.60.0"
    assert [(n.node_id, n.ip, n.alive, n.is_head) for n in view.nodes] == [(HEAD_ID, "10.212.0.11", True, True)]


@pytest.mark.parametrize(("mode", "expected"), list(MISBEHAVIOURS.items()), ids=list(MISBEHAVIOURS))
async def test_each_misbehaviour_gives_a_view_that_says_what_is_wrong(
    dashboard: tuple[Dashboard, str], mode: str, expected: tuple[bool, str]
) -> None:
    server, url = dashboard
    server.mode = mode
    view = await _view(url)
    reachable, said = expected
    assert view.reachable is reachable
    assert not view.healthy
    assert view.nodes == ()
    assert view.error is not None
    assert said in view.error


async def test_a_port_nobody_listens_on_gives_an_unreachable_view() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    view = await _view(f"http://127.0.0.1:{port}")
    assert not view.reachable
    assert view.error is not None
    assert "ClientConnectorError" in view.error


def _prober_view(prober: RayProber, check: Callable[[RayView], bool]) -> Callable[[], Awaitable[RayView | None]]:
    async def probe() -> RayView | None:
        view = prober.view(KEY)
        return view if view is not None and check(view) else None

    return probe


def _says(said: str) -> Callable[[RayView], bool]:
    return lambda view: view.error is not None and said in view.error


async def test_the_prober_outlives_every_misbehaviour_and_recovers(dashboard: tuple[Dashboard, str]) -> None:
    server, url = dashboard
    changes: list[Key] = []
    prober = RayProber(changes.append, interval=0.01, steady_interval=0.01, timeout=TIMEOUT)
    try:
        prober.watch(KEY, url)
        await wait_for(_prober_view(prober, lambda v: v.healthy), timeout=30, what="a first healthy view")
        for mode, (reachable, said) in MISBEHAVIOURS.items():
            server.mode = mode
            view = await wait_for(
                _prober_view(prober, _says(said)),
                timeout=30,
                what=f"the view of a dashboard in mode {mode}",
            )
            assert view.reachable is reachable
            assert not view.healthy
        server.release.set()  # the slow answer, still pending, ends
        woken = len(changes)
        server.mode = "good"
        view = await wait_for(_prober_view(prober, lambda v: v.healthy), timeout=30, what="a healthy view again")
        assert view.version == "2.60.0"
        assert len(changes) > woken
        assert set(changes) == {KEY}
    finally:
        await prober.stop()


async def test_watch_starts_again_a_poller_that_ended(dashboard: tuple[Dashboard, str]) -> None:
    _, url = dashboard
    prober = RayProber(lambda key: None, interval=0.01, steady_interval=0.01, timeout=TIMEOUT)
    try:
        prober.watch(KEY, url)
        await wait_for(_prober_view(prober, lambda v: v.healthy), timeout=30, what="a healthy view")
        ended = prober._tasks[KEY]
        ended.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ended
        prober.watch(KEY, url)
        restarted = prober._tasks[KEY]
        assert restarted is not ended
        assert not restarted.done()
        assert prober.view(KEY) is not None  # a restart in place keeps the last view
    finally:
        await prober.stop()


async def test_an_unexpected_error_is_logged_once_and_polling_goes_on(
    dashboard: tuple[Dashboard, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, url = dashboard
    calls = 0
    real_view = RayDashboard.view

    async def failing_view(self: RayDashboard, dashboard_url: str, activity: bool = False) -> RayView:
        nonlocal calls
        calls += 1
        if calls <= 20:
            raise KeyError("node_ip")
        return await real_view(self, dashboard_url, activity)

    monkeypatch.setattr(RayDashboard, "view", failing_view)
    changes: list[Key] = []
    prober = RayProber(changes.append, interval=0.01, steady_interval=0.01, timeout=TIMEOUT)
    try:
        with caplog.at_level(logging.ERROR, logger="vmray.rayprobe"):
            prober.watch(KEY, url)
            failed = await wait_for(
                _prober_view(prober, lambda v: not v.reachable), timeout=30, what="the view of a failed probe"
            )
            assert failed.error == "the operator could not probe Ray (KeyError)"
            await wait_for(_prober_view(prober, lambda v: v.healthy), timeout=30, what="a healthy view after")
        assert calls > 20
        failures = [r for r in caplog.records if "Ray probe of" in r.getMessage()]
        assert len(failures) == 1
        assert failures[0].exc_info is not None
        assert changes[-1] == KEY
    finally:
        await prober.stop()


HEAD_IP, WORKER_IP = "10.212.0.11", "10.212.0.12"  # the head is the one node the dashboard above reports
HEAD = RayNodeInfo("h", HEAD_IP, True, True)


def test_ray_is_steady_when_healthy_with_a_live_node_at_every_vm_address() -> None:
    worker = RayNodeInfo("w", WORKER_IP, True, False)
    view = RayView(reachable=True, healthy=True, nodes=(HEAD, worker))
    assert steady(view, frozenset({HEAD_IP, WORKER_IP}))
    assert steady(view, frozenset())


def test_a_vm_whose_node_has_not_joined_yet_keeps_ray_unsteady() -> None:
    assert not steady(RayView(reachable=True, healthy=True, nodes=(HEAD,)), frozenset({HEAD_IP, WORKER_IP}))


def test_a_dead_node_keeps_ray_unsteady_while_ray_lists_it() -> None:
    dead = RayNodeInfo("w", WORKER_IP, False, False)
    assert not steady(RayView(reachable=True, healthy=True, nodes=(HEAD, dead)), frozenset({HEAD_IP}))
    replaced = RayView(reachable=True, healthy=True, nodes=(HEAD, dead, RayNodeInfo("w2", WORKER_IP, True, False)))
    assert not steady(replaced, frozenset({HEAD_IP, WORKER_IP}))  # a new node at the same address, the old one dead


def test_an_unhealthy_or_unknown_ray_is_not_steady() -> None:
    assert not steady(RayView(reachable=True, healthy=False, nodes=(HEAD,)), frozenset({HEAD_IP}))
    assert not steady(None, frozenset())


async def _requests_within(server: Dashboard, seconds: float) -> int:
    before = server.requests
    await asyncio.sleep(seconds)
    return server.requests - before


async def _settled(
    url: str, expected: frozenset[str], on_change: Callable[[Key], None] = lambda key: None
) -> RayProber:
    """A prober whose first answer has come and that now waits its steady interval (an hour)."""
    prober = RayProber(on_change, interval=0.05, steady_interval=3600, timeout=TIMEOUT)
    prober.watch(KEY, url, expected=expected)
    await wait_for(lambda: _asked_once(prober), timeout=10, what="the first answer")
    await asyncio.sleep(0.2)
    return prober


async def test_the_prober_asks_often_while_a_vm_has_no_live_node_and_seldom_once_all_have(
    dashboard: tuple[Dashboard, str],
) -> None:
    server, url = dashboard
    prober = RayProber(lambda key: None, interval=0.05, steady_interval=3600, timeout=TIMEOUT)
    try:
        prober.watch(KEY, url, expected=frozenset({HEAD_IP, WORKER_IP}))  # the worker has not joined
        assert await _requests_within(server, 0.5) >= 3
        prober.watch(KEY, url, expected=frozenset({HEAD_IP}))  # the worker's VM went away
        await asyncio.sleep(0.2)  # the question under way ends; then the steady interval begins
        assert await _requests_within(server, 0.5) == 0
    finally:
        await prober.stop()


async def test_a_new_vm_ends_the_long_wait_of_a_steady_cluster(dashboard: tuple[Dashboard, str]) -> None:
    server, url = dashboard
    prober = await _settled(url, frozenset({HEAD_IP}))
    try:
        assert await _requests_within(server, 0.3) == 0  # steady: waiting an hour
        prober.watch(KEY, url, expected=frozenset({HEAD_IP}))  # nothing new: the wait goes on
        assert await _requests_within(server, 0.3) == 0
        prober.watch(KEY, url, expected=frozenset({HEAD_IP, WORKER_IP}))  # a worker VM got its address
        assert await _requests_within(server, 0.5) >= 3
    finally:
        await prober.stop()


async def test_a_new_vm_at_an_address_a_live_node_had_is_not_believed_up_before_ray_is_asked_again(
    dashboard: tuple[Dashboard, str],
) -> None:
    server, url = dashboard
    woken: list[Key] = []
    prober = await _settled(url, frozenset(), woken.append)  # no VM has an address yet; Ray lists its head
    try:
        assert await _requests_within(server, 0.3) == 0  # steady: waiting an hour
        woken.clear()
        # A VM now has the address where the last answer showed a live node: that node may be the one a replaced
        # VM ran there, so it does not count until Ray is asked again, which happens at once.
        prober.watch(KEY, url, expected=frozenset({HEAD_IP}))
        assert _alive_at(prober) == set()
        assert await _requests_within(server, 0.3) == 1
        assert _alive_at(prober) == {HEAD_IP}
        assert woken == [KEY]  # the reconcile learns that the node there is alive after all
    finally:
        await prober.stop()


async def test_a_node_that_never_joins_is_waited_for_at_the_steady_interval_after_a_while(
    dashboard: tuple[Dashboard, str],
) -> None:
    server, url = dashboard
    prober = RayProber(lambda key: None, interval=0.05, steady_interval=3600, timeout=TIMEOUT, patience=0.5)
    try:
        prober.watch(KEY, url, expected=frozenset({HEAD_IP, WORKER_IP}))  # the worker's Ray never starts
        assert await _requests_within(server, 0.3) >= 2
        await asyncio.sleep(0.5)
        assert await _requests_within(server, 0.5) == 0
    finally:
        await prober.stop()


async def _asked_once(prober: RayProber) -> bool:
    return prober.view(KEY) is not None


def _alive_at(prober: RayProber) -> set[str]:
    view = prober.view(KEY)
    return {n.ip for n in view.nodes if n.alive} if view else set()


async def test_a_poller_woken_as_it_is_stopped_stops_without_asking_again(dashboard: tuple[Dashboard, str]) -> None:
    server, url = dashboard
    prober = await _settled(url, frozenset())  # steady: waiting an hour
    prober.watch(KEY, url, expected=frozenset({HEAD_IP}))  # wakes it
    asked = server.requests
    async with asyncio.timeout(5):  # not wait_for, which would let the poller run before stop() begins
        await prober.stop()  # and stops it before it runs again
    assert server.requests == asked
