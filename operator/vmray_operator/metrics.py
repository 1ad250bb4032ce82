"""Prometheus metrics of the operator (served by `vmray-operator run --metrics-port`).

The reconcile loop's, the work queue's and the API client's carry the names and labels of controller-runtime
and client-go, so that the dashboards and alerts people have for Go operators work unchanged; `vmray_*` are
this operator's own. No label holds a secret, an address or a message: the per-cluster ones are bounded by
the clusters that exist (namespace, name, condition type and status)."""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from vmray_operator import timestamps
from vmray_operator.build_info import build_info

# No `*_created` series, as Go operators have none (the function has no annotations: an untyped call).
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTROLLER = "vmraycluster"  # the `controller` label and the work queue's `name`

# controller-runtime
RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller, by result (success, error, requeue_after)",
    ["controller", "result"],
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total", "Total number of reconciliation errors per controller", ["controller"]
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MAX_CONCURRENT_RECONCILES = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller",
    ["controller"],
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers", "Number of currently used workers per controller", ["controller"]
)

# client-go's work queue
QUEUE_BUCKETS = (0.0001, 0.001, 0.01, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WORKQUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", ["name"])
WORKQUEUE_ADDS = Counter("workqueue_adds_total", "Total number of adds handled by workqueue", ["name"])
WORKQUEUE_QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested",
    ["name"],
    buckets=QUEUE_BUCKETS,
)
WORKQUEUE_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes",
    ["name"],
    buckets=QUEUE_BUCKETS,
)
WORKQUEUE_RETRIES = Counter("workqueue_retries_total", "Total number of retries handled by workqueue", ["name"])
WORKQUEUE_UNFINISHED_WORK = Gauge(
    "workqueue_unfinished_work_seconds",
    "How many seconds of work has been done that is in progress and hasn't been observed by work_duration",
    ["name"],
)
WORKQUEUE_LONGEST_RUNNING = Gauge(
    "workqueue_longest_running_processor_seconds",
    "How many seconds has the longest running processor for workqueue been running",
    ["name"],
)

# client-go's REST client
REST_REQUESTS = Counter(
    "rest_client_requests_total",
    "Number of HTTP requests to the Kubernetes API, partitioned by status code, method, and host",
    ["code", "method", "host"],
)
REST_REQUEST_DURATION = Histogram(
    "rest_client_request_duration_seconds",
    "Request latency in seconds, broken down by verb and host",
    ["verb", "host"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)

# this operator's own
BUILD_INFO = Gauge(
    "vmray_build_info",
    "Always 1: the operator's version and the versions it was built with",
    ["version", "ray_version", "kopf_version", "python_version"],
)
TIME_TO_READY = Histogram(
    "vmray_cluster_time_to_ready_seconds",
    "From a cluster's creation to its first Ready, once per cluster",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
# Made when Prometheus scrapes, from the status each cluster last showed (controller/cluster_gauges.py).
CLUSTERS = "vmray_clusters"  # {state}: clusters by status.cluster_state
VMS = "vmray_vms"  # {vm_status}: the clusters' VMs by vm_status
CLUSTER_CONDITION = "vmray_cluster_condition"  # {namespace, name, type, status}: 1 for the condition's status

_info = build_info()
BUILD_INFO.labels(_info.version, _info.ray, _info.kopf, _info.python).set(1)


@cache
def _request_series(server: str, method: str, code: str) -> tuple[Counter, Histogram]:
    """The counter and the latency histogram of one kind of request (a few dozen kinds: servers x methods x codes)."""
    host = urlsplit(server).netloc or server
    return REST_REQUESTS.labels(code, method, host), REST_REQUEST_DURATION.labels(method, host)


class SentRequest:
    code: int | str = "<error>"  # the HTTP status of the answer; no answer (a connection error) leaves "<error>"


@contextlib.contextmanager
def api_request(server: str, method: str) -> Iterator[SentRequest]:
    """Counts and times one request to the API server at `server` (its URL), as client-go does."""
    sent, started = SentRequest(), time.monotonic()
    try:
        yield sent
    finally:
        requests, latency = _request_series(server, method, str(sent.code))
        requests.inc()
        latency.observe(time.monotonic() - started)


class FirstReady:
    """Observes TIME_TO_READY once per cluster, by uid. A cluster whose status showed it Ready before this
    process saw it become Ready (an operator restart) is marked without an observation."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def observe(self, metadata: Mapping[str, Any], now: datetime.datetime) -> None:
        """The cluster is Ready and its previous status was not."""
        uid, created = str(metadata.get("uid", "")), metadata.get("creationTimestamp")
        if not uid or uid in self._seen:
            return
        self._seen.add(uid)
        if created:
            since = timestamps.parse(str(created))
            TIME_TO_READY.observe(max(0.0, (now - since).total_seconds()))

    def mark(self, uid: str) -> None:
        """The cluster has been Ready before: its next Ready is not its first."""
        self._seen.add(uid)

    def forget(self, uid: str) -> None:
        self._seen.discard(uid)


FIRST_READY = FirstReady()
