"""Prometheus metrics of the operator (served by `vmray-operator run --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

KUBE_REQUESTS = Counter("vmray_kube_requests_total", "Requests the operator sent to the Kubernetes API", ["method"])
KUBE_ERRORS = Counter("vmray_kube_request_errors_total", "Requests answered with an error, by HTTP status", ["status"])
RECONCILES = Counter("vmray_reconciles_total", "Reconciles run, by outcome", ["outcome"])
RECONCILE_SECONDS = Histogram(
    "vmray_reconcile_duration_seconds",
    "How long one reconcile of one cluster took",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CLUSTERS = Gauge("vmray_clusters", "VMRayClusters by cluster_state", ["state"])
VMS = Gauge("vmray_vms", "The operator's VirtualMachines by vm_status", ["vm_status"])
TIME_TO_READY = Histogram(
    "vmray_cluster_time_to_ready_seconds",
    "From a cluster's creation to its first Ready",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200),
)
