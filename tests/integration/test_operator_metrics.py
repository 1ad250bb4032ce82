"""The operator's own metrics over clusters' lives on the real API server: the work queue, the reconciles, the
API requests by answer code, the build, each cluster's conditions while it exists, and time to Ready counted
once per cluster. The in-process operator serves the process's Prometheus registry, read here as a scrape."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clusters import delete_cluster, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.build_info import build_info
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube

pytestmark = pytest.mark.simulator

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape() -> Series:
    """Every sample as /metrics serves it, by series name and labels."""
    text = generate_latest(REGISTRY).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(series: Series, metric: str, /, **labels: str) -> float:
    return series.get((metric, frozenset(labels.items())), 0.0)


def total(series: Series, metric: str, /, **labels: str) -> float:
    """Summed over the labels not given."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in series.items() if n == metric and wanted <= have)


async def test_metrics_follow_clusters_through_their_lives(kube: Kube, namespace: str, operator: Controller) -> None:
    host = urlsplit(operator.kube.configuration.host).netloc
    before = scrape()
    names = ("metered-a", "metered-b")
    for name in names:
        await kube.create(r.VMRAYCLUSTERS, sample(namespace, name), namespace)
    for name in names:
        await wait_condition(kube, namespace, name, "Ready")
    # metered-a scales up the way Ray's autoscaler does, and is Ready again: not a first Ready.
    patch = {"spec": {"autoscaler_desired_workers": {"metered-a-w-aaaaaaaa": "ray.worker.default"}}}
    await kube.patch(r.VMRAYCLUSTERS, "metered-a", patch, namespace)

    async def three_running() -> bool:
        status = ((await get_cluster(kube, namespace, "metered-a")) or {}).get("status", {})
        return bool(status.get("ready_workers") == 3)

    await wait_for(three_running, what="metered-a with 3 running workers")
    await wait_condition(kube, namespace, "metered-a", "Ready")

    async def conditions_shown() -> Series | None:
        series = scrape()
        shown = all(
            value(series, "vmray_cluster_condition", namespace=namespace, name=name, type="Ready", status="true") == 1
            for name in names
        )
        return series if shown else None

    during = await wait_for(conditions_shown, what="both clusters' Ready=True as metrics")
    for name in names:
        ready_false = {"namespace": namespace, "name": name, "type": "Ready", "status": "false"}
        assert value(during, "vmray_cluster_condition", **ready_false) == 0
    assert total(during, "vmray_clusters", state="running") >= 2
    assert total(during, "vmray_vms", vm_status="running") >= 2 + 3 + 2  # two heads, 3 + 2 workers

    for name in names:
        await delete_cluster(kube, namespace, name)

    async def conditions_gone() -> Series | None:
        series = scrape()
        left = [
            labels for (n, labels) in series if n == "vmray_cluster_condition" and ("namespace", namespace) in labels
        ]
        return None if left else series

    after = await wait_for(conditions_gone, what="the deleted clusters' condition series gone")

    def grew(metric: str, /, **labels: str) -> float:
        return total(after, metric, **labels) - total(before, metric, **labels)

    assert grew("vmray_cluster_time_to_ready_seconds_count") == len(names)  # once per cluster, not per Ready
    assert grew("workqueue_adds_total", name="vmraycluster") > 0
    assert grew("workqueue_queue_duration_seconds_count", name="vmraycluster") > 0
    assert grew("workqueue_work_duration_seconds_count", name="vmraycluster") > 0
    assert grew("controller_runtime_reconcile_total", controller="vmraycluster", result="success") > 0
    assert grew("controller_runtime_reconcile_time_seconds_count", controller="vmraycluster") > 0
    assert value(after, "controller_runtime_max_concurrent_reconciles", controller="vmraycluster") == (
        operator.settings.workers
    )
    assert ("workqueue_depth", frozenset({("name", "vmraycluster")})) in after
    assert ("workqueue_longest_running_processor_seconds", frozenset({("name", "vmraycluster")})) in after
    # The API answered the operator's creations with 201, its status patches with 200, the finalizer's removal
    # of a deleted cluster with 200, and an object that was gone already with 404.
    assert grew("rest_client_requests_total", code="201", method="POST", host=host) >= 2 * 5
    assert grew("rest_client_requests_total", code="200", method="PATCH", host=host) > 0
    assert grew("rest_client_request_duration_seconds_count", verb="PATCH", host=host) > 0
    info = build_info()
    build = {"version": info.version, "ray_version": info.ray, "kopf_version": info.kopf, "python_version": info.python}
    assert value(after, "vmray_build_info", **build) == 1
