"""A deletion with deletion_policy.wait_for_jobs waits while Ray reports running jobs, says so in the Ready
condition (the jobs and the deadline), and goes on once they end or the bound passes; without the policy a
deletion is as before. Ray's answers come from a stand-in prober here: the simulator of this suite runs no Ray."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from tests.support.clock import ShiftedClock
from tests.support.clusters import cluster_vms, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.conditions import find
from vmray_operator.controller.rayprobe import RayProber
from vmray_operator.controller.runtime import Controller
from vmray_operator.controller.stores import Key
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.ray.view import RayActivity, RayView

pytestmark = pytest.mark.simulator

LONG_JOB = "raysubmit_nightly_training"


class ScriptedRay(RayProber):
    """Ray as the test tells it: healthy, running the given jobs; records which clusters were asked."""

    def __init__(self) -> None:
        super().__init__(lambda key: None)
        self.jobs: tuple[str, ...] = (LONG_JOB,)
        self.asked: set[Key] = set()
        self.views = 0

    def watch(
        self,
        key: Key,
        dashboard_url: str | None,
        token: str | None = None,
        activity: bool = False,
        expected: frozenset[str] = frozenset(),
    ) -> None:
        if dashboard_url is not None and activity:
            self.asked.add(key)

    def forget(self, key: Key) -> None:
        self.asked.discard(key)

    def view(self, key: Key) -> RayView | None:
        self.views += 1
        return RayView(reachable=True, healthy=True, activity=RayActivity(active_jobs=self.jobs))


@pytest.fixture
def scripted(operator: Controller) -> Iterator[tuple[ScriptedRay, ShiftedClock]]:
    reconciler = operator.reconciler
    prober, clock = reconciler.prober, reconciler.clock
    ray, stepped = ScriptedRay(), ShiftedClock()
    reconciler.clock = stepped
    try:
        yield ray, stepped
    finally:
        reconciler.prober, reconciler.clock = prober, clock


async def _vm_count(kube: Kube, namespace: str, name: str) -> int:
    return len(await cluster_vms(kube, namespace, name))


async def _delete_while_ray_runs_a_job(
    kube: Kube, namespace: str, operator: Controller, ray: ScriptedRay, name: str, **spec: object
) -> int:
    """A Ready cluster of the sample, deleted once Ray (asked from then on) runs a long job; its VM count."""
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, name, **spec), namespace)
    await wait_condition(kube, namespace, name, "Ready")
    vms = await _vm_count(kube, namespace, name)
    operator.reconciler.prober = ray
    await kube.delete(r.VMRAYCLUSTERS, name, namespace)
    return vms


async def _wait_gone(kube: Kube, namespace: str, name: str, why: str) -> None:
    async def gone() -> bool:
        return await get_cluster(kube, namespace, name) is None

    await wait_for(gone, timeout=60, what=f"{name} deleted {why}")
    assert await _vm_count(kube, namespace, name) == 0


async def test_a_guarded_deletion_waits_for_the_running_job_and_goes_on_after_the_bound(
    kube: Kube, namespace: str, operator: Controller, scripted: tuple[ScriptedRay, ShiftedClock]
) -> None:
    ray, clock = scripted
    policy = {"wait_for_jobs": True, "max_wait_minutes": 5}
    vms = await _delete_while_ray_runs_a_job(kube, namespace, operator, ray, "guarded", deletion_policy=policy)

    cluster = await wait_condition(kube, namespace, "guarded", "Ready", "False", reason="WaitingForJobs")
    waiting = find(cluster["status"]["conditions"], "Ready") or {}
    assert LONG_JOB in waiting["message"]
    deleted_at = datetime.datetime.fromisoformat(cluster["metadata"]["deletionTimestamp"])
    deadline = (deleted_at + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert deadline in waiting["message"]
    assert (namespace, "guarded") in ray.asked
    # Ray asked twice more later, nothing of the cluster has gone
    seen = ray.views

    async def asked_again() -> bool:
        return ray.views >= seen + 2

    await wait_for(asked_again, timeout=30, what="two more reconciles of the waiting deletion")
    assert await _vm_count(kube, namespace, "guarded") == vms

    clock.step(datetime.timedelta(minutes=6))  # past the bound: the job still runs, the deletion goes on
    await _wait_gone(kube, namespace, "guarded", "once the bound passed")
    assert (namespace, "guarded") not in ray.asked


async def test_a_guarded_deletion_goes_on_once_the_jobs_end(
    kube: Kube, namespace: str, operator: Controller, scripted: tuple[ScriptedRay, ShiftedClock]
) -> None:
    ray, _ = scripted
    policy = {"wait_for_jobs": True, "max_wait_minutes": 600}
    await _delete_while_ray_runs_a_job(kube, namespace, operator, ray, "ends", deletion_policy=policy)
    await wait_condition(kube, namespace, "ends", "Ready", "False", reason="WaitingForJobs")
    ray.jobs = ()
    await _wait_gone(kube, namespace, "ends", "once its job ended")


async def test_without_the_policy_a_deletion_does_not_ask_ray_and_goes_on(
    kube: Kube, namespace: str, operator: Controller, scripted: tuple[ScriptedRay, ShiftedClock]
) -> None:
    ray, _ = scripted
    await _delete_while_ray_runs_a_job(kube, namespace, operator, ray, "unguarded")
    await _wait_gone(kube, namespace, "unguarded", "while Ray runs a job")
    assert (namespace, "unguarded") not in ray.asked
