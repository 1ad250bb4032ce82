"""Day-2 operations with real Ray: an idle cluster suspends itself (never while a job runs), resumes to Ready at the
same dashboard address, and a person suspends it again; a scheduled tier drains before its window closes, is gone
after it, and comes back when it opens, while the always-on tier stays. The operator's clock is the test's."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.ray_clusters import (
    READY_TIMEOUT,
    processes_of,
    ray_access,
    ray_cluster,
    ray_nodes,
    ray_tasks,
    sample_spec_part,
    submit_job,
)
from tests.e2e.test_ray_cluster import DEMO_JOB
from tests.support.clock import ShiftedClock
from tests.support.clusters import cluster_vms, get_cluster, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.render.autoscaler import CONFIG_KEY, config_map_name
from vmray_operator.render.names import ROLE_HEAD


@pytest.fixture
def clock(operator: Controller) -> Iterator[ShiftedClock]:
    real = operator.reconciler.clock
    shifted = ShiftedClock()
    operator.reconciler.clock = shifted
    try:
        yield shifted
    finally:
        operator.reconciler.clock = real


def _one_worker(**changes: Any) -> dict[str, Any]:
    common = sample_spec_part("common_node_config")
    common["available_node_types"]["ray.worker.default"].update(min_workers=1, **changes)
    return common


async def _status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = ((await get_cluster(kube, namespace, name)) or {}).get("status", {})
    return status


async def _events(kube: Kube, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    events = await kube.list(r.EVENTS, namespace)
    return [e for e in events if e["involvedObject"].get("name") == name and e.get("reason") == reason]


# A job that keeps Ray busy for a while, and says when it is done.
SLEEPY_JOB = """
import time
import ray

@ray.remote(num_cpus=1)
def work(seconds):
    time.sleep(seconds)
    return seconds

ray.init()
print("slept", ray.get(work.remote(40)))
"""


async def test_an_idle_cluster_suspends_itself_resumes_at_the_same_address_and_suspends_on_request(
    kube: Kube, namespace: str, operator: Controller, clock: ShiftedClock, tmp_path: Path
) -> None:
    name, key = "idle", (namespace, "idle")
    async with ray_cluster(kube, namespace, name, common_node_config=_one_worker(), idle_suspend_minutes=1) as ready:
        dashboard = ready["status"]["endpoints"]["dashboard"]
        access = await ray_access(kube, ready)
        (tmp_path / "sleepy.py").write_text(SLEEPY_JOB)
        job = asyncio.create_task(submit_job(access, tmp_path, "python", "sleepy.py"))

        async def busy() -> bool:
            running = any(t["name"] == "work" and t["state"] == "RUNNING" for t in await ray_tasks(access))
            return running and "idle_since" not in await _status(kube, namespace, name)

        await wait_for(busy, timeout=120, interval=1, what="the job running and the cluster not idle")
        # Far past idle_suspend_minutes on the operator's clock: a running job keeps the cluster up.
        clock.step(datetime.timedelta(minutes=30))
        operator.enqueue(key)
        while not job.done():
            cluster = await get_cluster(kube, namespace, name) or {}
            assert not cluster["spec"].get("suspend"), "suspended while a job ran"
            await asyncio.sleep(1)
        result = await job
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "slept 40" in result.stdout

        async def idle_since() -> str | None:
            since: str | None = (await _status(kube, namespace, name)).get("idle_since")
            return since

        await wait_for(idle_since, timeout=60, what="Ray idle after the job, in the status")
        clock.step(datetime.timedelta(minutes=2))
        operator.enqueue(key)
        cluster = await wait_condition(kube, namespace, name, "Suspended", reason="IdleTimeout", timeout=180)
        assert "idle for 1 minutes" in (find(cluster["status"]["conditions"], "Suspended") or {})["message"]
        assert await _events(kube, namespace, name, "IdleTimeout")
        await _check_suspended(kube, namespace, name, dashboard)

        # Resumed: the head boots from its disk and Ray starts, the worker comes back, at the same address.
        await kube.patch(r.VMRAYCLUSTERS, name, {"spec": {"suspend": False, "idle_suspend_minutes": None}}, namespace)
        resumed = await wait_condition(kube, namespace, name, "Ready", timeout=READY_TIMEOUT)
        assert resumed["status"]["endpoints"]["dashboard"] == dashboard
        assert (await get_cluster(kube, namespace, name) or {})["metadata"].get("annotations", {}).get(
            contract.ANNOTATION_SUSPENDED_BY
        ) is None
        ran = await submit_job(await ray_access(kube, resumed), DEMO_JOB, "python", "demo_job.py")
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert "2 of 2 Ray nodes took part" in ran.stdout
        answered = {line.rsplit(" ", 1)[-1] for line in ran.stdout.splitlines() if "answered from" in line}
        assert answered == set(await cluster_vms(kube, namespace, name))

        # A person suspends it: the same end state, with the person's reason.
        await kube.patch(r.VMRAYCLUSTERS, name, {"spec": {"suspend": True}}, namespace)
        await wait_condition(kube, namespace, name, "Suspended", reason="Suspended", timeout=180)
        await _check_suspended(kube, namespace, name, dashboard)


async def _check_suspended(kube: Kube, namespace: str, name: str, dashboard: str) -> None:
    """No worker VM, the head VM powered off with its disk, no Ray process of the cluster; the address kept."""
    vms = await cluster_vms(kube, namespace, name)
    (head,) = vms.values()
    assert head["metadata"]["labels"][contract.LABEL_ROLE] == ROLE_HEAD
    assert head["spec"]["powerState"] == "PoweredOff"

    async def powered_off() -> bool:
        vm = await kube.get(r.VIRTUAL_MACHINES, head["metadata"]["name"], namespace) or {}
        return bool(vm.get("status", {}).get("powerState") == "PoweredOff")

    await wait_for(powered_off, timeout=60, what="the head VM reported powered off")
    assert processes_of({head["metadata"]["name"]}) == []
    status = await _status(kube, namespace, name)
    assert status["cluster_state"] == "suspended"
    assert status["endpoints"]["dashboard"] == dashboard
    assert not status.get("current_workers")


# The schedule of seed 003's heavy tier, with a one-minute drain lead so that the test fits in minutes.
NIGHTS = {"windows": [{"start": "18:00", "end": "06:00"}], "time_zone": "UTC", "drain_minutes_before_end": 1}
EVENING = datetime.datetime(2026, 5, 4, 20, 0, tzinfo=datetime.UTC)
DRAIN_TIME = datetime.datetime(2026, 5, 5, 5, 59, 5, tzinfo=datetime.UTC)
AFTER_CLOSE = datetime.datetime(2026, 5, 5, 6, 0, 30, tzinfo=datetime.UTC)
NEXT_EVENING = datetime.datetime(2026, 5, 5, 18, 0, 30, tzinfo=datetime.UTC)

# A task only the heavy tier can run (seed 003's custom resource); it outlives the start of the drain.
HEAVY_TASK_JOB = """
import socket
import time
import ray

@ray.remote(num_cpus=0, resources={"heavy_compute": 1}, max_retries=0)
def heavy(seconds):
    time.sleep(seconds)
    return socket.gethostname()

ray.init()
print("heavy task result from", ray.get(heavy.remote(20)))
"""


def _tiered() -> dict[str, Any]:
    common = _one_worker()
    always = common["available_node_types"]["ray.worker.default"]
    common["available_node_types"]["heavy"] = {
        **always,
        "resources": {"cpu": 1, "heavy_compute": 1},
        "ray_labels": {"tier": "heavy-compute"},
        "max_workers": 1,
        "schedule": NIGHTS,
    }
    return common


async def test_a_scheduled_tier_drains_before_the_close_is_gone_after_it_and_returns_when_it_opens(
    kube: Kube, namespace: str, operator: Controller, clock: ShiftedClock, tmp_path: Path
) -> None:
    name, key = "tiers", (namespace, "tiers")
    clock.set(EVENING)
    async with ray_cluster(kube, namespace, name, common_node_config=_tiered()) as ready:
        access = await ray_access(kube, ready)
        workers = await _workers_by_type(kube, namespace, name)
        (heavy_vm,), (always_vm,) = workers["heavy"], workers["ray.worker.default"]
        always_uid = (await cluster_vms(kube, namespace, name))[always_vm]["metadata"]["uid"]
        tier = ready["status"]["schedules"]["heavy"]
        assert (tier["open"], tier["next_state"]) == (True, "draining")
        assert tier["next_change"] == "2026-05-05T05:59:00Z"

        (tmp_path / "heavy.py").write_text(HEAVY_TASK_JOB)
        job = asyncio.create_task(submit_job(access, tmp_path, "python", "heavy.py"))

        async def heavy_running() -> bool:
            return any(t["name"] == "heavy" and t["state"] == "RUNNING" for t in await ray_tasks(access))

        await wait_for(heavy_running, timeout=120, interval=0.5, what="the heavy task running on the heavy tier")
        heavy_ip = (await _status(kube, namespace, name))["current_workers"][heavy_vm]["ip"]

        clock.set(DRAIN_TIME)  # the drain lead: the tier's workers drain and go
        operator.enqueue(key)

        async def heavy_gone() -> bool:
            return heavy_vm not in await cluster_vms(kube, namespace, name)

        await wait_for(heavy_gone, timeout=120, what="the heavy worker drained and deleted")
        result = await job
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert f"heavy task result from {heavy_vm}" in result.stdout  # finished while its node drained
        dead = [n for n in await ray_nodes(access) if n["node_ip"] == heavy_ip]
        assert dead
        assert dead[-1]["state"] == "DEAD"
        assert "draining" in (dead[-1].get("state_message") or ""), dead[-1]

        clock.set(AFTER_CLOSE)
        operator.enqueue(key)

        async def closed() -> dict[str, Any] | None:
            status = await _status(kube, namespace, name)
            tier = (status.get("schedules") or {}).get("heavy", {})
            return status if tier.get("open") is False else None

        status = await wait_for(closed, timeout=60, what="the heavy tier shown closed")
        assert status["schedules"]["heavy"]["next_change"] == "2026-05-05T18:00:00Z"
        config = await kube.get(r.CONFIG_MAPS, config_map_name(name), namespace)
        assert config is not None
        heavy_for_ray = yaml.safe_load(config["data"][CONFIG_KEY])["available_node_types"]["heavy"]
        assert (heavy_for_ray["min_workers"], heavy_for_ray["max_workers"]) == (0, 0)  # Ray's autoscaler adds none
        assert (await cluster_vms(kube, namespace, name))[always_vm]["metadata"]["uid"] == always_uid
        assert set(await _workers_by_type(kube, namespace, name)) == {"ray.worker.default"}

        clock.set(NEXT_EVENING)  # the window opens again: the tier's worker comes back
        operator.enqueue(key)

        async def heavy_back() -> bool:
            status = await _status(kube, namespace, name)
            back = (await _workers_by_type(kube, namespace, name)).get("heavy", [])
            return bool(back) and all(status["current_workers"].get(w, {}).get("ray_status") == "ALIVE" for w in back)

        await wait_for(heavy_back, timeout=READY_TIMEOUT, what="the heavy tier's worker back and alive in Ray")
        await wait_condition(kube, namespace, name, "Ready", timeout=READY_TIMEOUT)
        assert (await cluster_vms(kube, namespace, name))[always_vm]["metadata"]["uid"] == always_uid


async def _workers_by_type(kube: Kube, namespace: str, name: str) -> dict[str, list[str]]:
    by_type: dict[str, list[str]] = {}
    for vm_name, vm in (await cluster_vms(kube, namespace, name)).items():
        labels = vm["metadata"]["labels"]
        if labels.get(contract.LABEL_ROLE) != ROLE_HEAD:
            by_type.setdefault(labels[contract.LABEL_NODE_TYPE], []).append(vm_name)
    return by_type
