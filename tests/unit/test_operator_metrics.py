"""The operator's own metrics: the work queue's and the reconcile loop's (client-go and controller-runtime names),
the API client's, the per-cluster gauges, and time to Ready counted once per cluster."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import kubernetes.client
import pytest
from prometheus_client import REGISTRY

from vmray_operator import metrics
from vmray_operator.api.models import Condition, VMRayClusterStatus
from vmray_operator.build_info import build_info
from vmray_operator.controller.cluster_gauges import ClusterGauges
from vmray_operator.controller.queue import WorkQueue
from vmray_operator.controller.status_writer import StatusWriter
from vmray_operator.kube.client import Kube
from vmray_operator.kube.events import EventRecorder
from vmray_operator.reconcile.status import status_body


def value(series: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(series, labels)
    return 0.0 if found is None else found


async def test_queue_counts_adds_results_retries_and_durations_as_client_go_does() -> None:
    name = f"q-{uuid.uuid4().hex[:6]}"
    release = asyncio.Event()
    runs: list[str] = []

    async def handler(key: str) -> float | None:
        runs.append(key)
        if key == "slow" and runs.count("slow") == 1:
            await release.wait()
        if key == "flaky" and runs.count("flaky") == 1:
            raise RuntimeError("the API server went away")
        return 30.0 if key == "again" else None

    queue: WorkQueue[str] = WorkQueue(handler, workers=1, max_backoff=0.05, name=name)
    queue.start()
    assert value("controller_runtime_max_concurrent_reconciles", controller=name) == 1
    queue.add("slow")
    await asyncio.sleep(0.05)
    queue.add("slow")  # while it runs: marked dirty, runs once more
    queue.add("slow")  # folded into that one
    queue.add("again")
    queue.add("again")  # folded: it is queued already
    await asyncio.sleep(0.05)
    # One worker, busy: "again" waits in the queue, "slow" has run for a while.
    assert value("workqueue_depth", name=name) == 1
    assert value("controller_runtime_active_workers", controller=name) == 1
    assert value("workqueue_longest_running_processor_seconds", name=name) >= 0.09
    assert value("workqueue_unfinished_work_seconds", name=name) >= 0.09
    release.set()
    queue.add("flaky")
    await asyncio.sleep(0.3)
    await queue.stop()

    assert runs == ["slow", "again", "flaky", "slow", "flaky"]
    # slow, slow (dirty), again, flaky, and flaky once more when its back-off ended
    assert value("workqueue_adds_total", name=name) == 5
    assert value("workqueue_retries_total", name=name) == 1
    assert value("controller_runtime_reconcile_total", controller=name, result="success") == 3
    assert value("controller_runtime_reconcile_total", controller=name, result="requeue_after") == 1
    assert value("controller_runtime_reconcile_total", controller=name, result="error") == 1
    assert value("controller_runtime_reconcile_errors_total", controller=name) == 1
    assert value("controller_runtime_reconcile_time_seconds_count", controller=name) == 5
    assert value("workqueue_work_duration_seconds_count", name=name) == 5
    assert value("workqueue_queue_duration_seconds_count", name=name) == 5
    # "again" and the second "slow" waited behind the first "slow" for 0.05 s or more
    assert value("workqueue_queue_duration_seconds_bucket", name=name, le="0.01") <= 3
    assert value("workqueue_depth", name=name) == 0
    assert value("controller_runtime_active_workers", controller=name) == 0
    assert value("workqueue_longest_running_processor_seconds", name=name) == 0


def test_api_requests_are_counted_by_code_method_and_host() -> None:
    server = f"https://{uuid.uuid4().hex[:8]}.example:6443"
    host = server.removeprefix("https://")
    with metrics.api_request(server, "PATCH") as sent:
        sent.code = 409
    with pytest.raises(ConnectionError), metrics.api_request(server, "GET"):
        raise ConnectionError("refused")
    assert value("rest_client_requests_total", code="409", method="PATCH", host=host) == 1
    assert value("rest_client_requests_total", code="<error>", method="GET", host=host) == 1
    assert value("rest_client_request_duration_seconds_count", verb="GET", host=host) == 1


def test_build_info_names_the_installed_version() -> None:
    (sample,) = next(family for family in REGISTRY.collect() if family.name == "vmray_build_info").samples
    assert sample.value == 1
    assert sample.labels["version"] == build_info().version != "unknown"
    assert sample.labels["ray_version"].count(".") == 2


def cluster(name: str, state: str, ready: str, workers: dict[str, str], uid: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "deploy-ray", "uid": uid or f"uid-{name}"},
        "status": {
            "cluster_state": state,
            "head_node_status": {"vm_status": "running"},
            "current_workers": {w: {"vm_status": s} for w, s in workers.items()},
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "Running" if ready == "True" else "WorkersProvisioning"},
                {"type": "HeadReady", "status": "True", "reason": "Running"},
            ],
        },
    }


def families(gauges: ClusterGauges) -> dict[str, dict[tuple[str, ...], float]]:
    return {f.name: {tuple(s.labels.values()): s.value for s in f.samples} for f in gauges.collect()}


def test_cluster_gauges_follow_each_cluster_and_drop_it_when_it_goes() -> None:
    gauges = ClusterGauges()
    gauges.note(("deploy-ray", "a"), cluster("a", "provisioning", "False", {"a-w-1": "initialized"}))
    gauges.note(("deploy-ray", "b"), cluster("b", "running", "True", {"b-w-1": "running", "b-w-2": "running"}))
    seen = families(gauges)
    assert seen["vmray_clusters"][("provisioning",)] == 1
    assert seen["vmray_clusters"][("running",)] == 1
    assert seen["vmray_clusters"][("failed",)] == 0  # every state is there, so a sum is never absent
    assert seen["vmray_vms"] == {("failure",): 0, ("initialized",): 1, ("running",): 4}
    conditions = seen["vmray_cluster_condition"]
    assert conditions[("deploy-ray", "a", "Ready", "false")] == 1
    assert conditions[("deploy-ray", "a", "Ready", "true")] == 0
    assert conditions[("deploy-ray", "a", "Ready", "unknown")] == 0
    assert conditions[("deploy-ray", "b", "Ready", "true")] == 1
    assert len(conditions) == 2 * 2 * 3  # clusters x condition types x statuses

    # a's worker came up: counted once, not on top of what a said before
    gauges.note(("deploy-ray", "a"), cluster("a", "running", "True", {"a-w-1": "running"}))
    gauges.note(("deploy-ray", "a"), cluster("a", "running", "True", {"a-w-1": "running"}))
    seen = families(gauges)
    assert seen["vmray_clusters"][("running",)] == 2
    assert seen["vmray_clusters"][("provisioning",)] == 0
    assert seen["vmray_vms"][("running",)] == 5
    assert seen["vmray_vms"][("initialized",)] == 0

    gauges.forget(("deploy-ray", "b"))
    seen = families(gauges)
    assert {labels[1] for labels in seen["vmray_cluster_condition"]} == {"a"}
    assert seen["vmray_vms"][("running",)] == 2
    gauges.forget(("deploy-ray", "never-seen"))  # no harm
    gauges.clear()
    assert families(gauges)["vmray_cluster_condition"] == {}


def test_the_cluster_gauges_are_served_by_the_registry() -> None:
    names = {family.name for family in REGISTRY.collect()}
    assert {metrics.CLUSTERS, metrics.VMS, metrics.CLUSTER_CONDITION} <= names


class RecordedEvents(EventRecorder):
    def __init__(self, kube: Kube) -> None:
        super().__init__(kube)
        self.emitted: list[tuple[str, str]] = []

    def emit(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.emitted.append((type_, reason))


def ready(status: str, reason: str) -> VMRayClusterStatus:
    ready = Condition(type="Ready", status=status, reason=reason, message="")
    return VMRayClusterStatus(conditions=[ready])


class AcceptingKube(Kube):
    """Takes every status write, as an API server that accepts it would."""

    def __init__(self) -> None:
        super().__init__(kubernetes.client.Configuration())
        self.version = 0

    async def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.version += 1
        return {"metadata": {"resourceVersion": str(self.version)}}


async def test_time_to_ready_is_observed_once_per_cluster_at_its_first_ready() -> None:
    kube = AcceptingKube()
    now = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
    events = RecordedEvents(kube)
    writer = StatusWriter(kube, events, clock=lambda: now)
    uid = uuid.uuid4().hex
    meta = {"name": "c", "namespace": "ns", "uid": uid, "creationTimestamp": "2026-03-01T11:58:30Z"}
    count_before = value("vmray_cluster_time_to_ready_seconds_count")
    sum_before = value("vmray_cluster_time_to_ready_seconds_sum")

    async def write(previous: VMRayClusterStatus | None, status: VMRayClusterStatus) -> None:
        body = {"metadata": {**meta, "resourceVersion": str(kube.version)}}
        if previous is not None:
            body["status"] = status_body(previous)
        await writer.write(("ns", "c"), body, status)

    try:
        # What a cluster's status goes through: Ready=False from its first write on, then True.
        await write(None, ready("False", "HeadProvisioning"))
        await write(ready("False", "HeadProvisioning"), ready("True", "Running"))
        assert value("vmray_cluster_time_to_ready_seconds_count") == count_before + 1
        assert value("vmray_cluster_time_to_ready_seconds_sum") == sum_before + 90
        # A worker failed and came back: Ready again, but not for the first time.
        await write(ready("True", "Running"), ready("False", "WorkerFailed"))
        await write(ready("False", "WorkerFailed"), ready("True", "Running"))
        assert value("vmray_cluster_time_to_ready_seconds_count") == count_before + 1
        assert events.emitted.count(("Normal", "Ready")) == 2
    finally:
        kube.close()


def test_a_cluster_seen_ready_before_is_not_counted_again_after_a_restart() -> None:
    now = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
    before = value("vmray_cluster_time_to_ready_seconds_count")
    gauges = ClusterGauges()
    # What a restarted operator sees first: the cluster degraded, after having been Ready.
    degraded = cluster("d", "degraded", "False", {}, uid=uuid.uuid4().hex)
    gauges.note(("deploy-ray", "d"), degraded)
    metrics.FIRST_READY.observe(degraded["metadata"] | {"creationTimestamp": "2026-03-01T11:00:00Z"}, now)
    assert value("vmray_cluster_time_to_ready_seconds_count") == before
    # A new cluster of the same name is a new cluster.
    gauges.forget(("deploy-ray", "d"))
    fresh = {"uid": uuid.uuid4().hex, "creationTimestamp": "2026-03-01T11:59:00Z"}
    metrics.FIRST_READY.observe(fresh, now)
    assert value("vmray_cluster_time_to_ready_seconds_count") == before + 1
