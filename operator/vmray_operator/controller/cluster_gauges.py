"""Per-cluster gauges: what each cluster's status says, noted when its reconcile ends (no periodic scan of every
cluster) and turned into metric families only when Prometheus scrapes: clusters by state, VMs by vm_status, and
each cluster's conditions in the style of kube-state-metrics (one series per status, 1 for the current one)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import get_args

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from vmray_operator import metrics
from vmray_operator.api.contract import Body, ConditionType
from vmray_operator.api.models import ClusterState, VmStatus
from vmray_operator.controller.stores import Key
from vmray_operator.reconcile.observed import version

CONDITION_STATUSES = ("true", "false", "unknown")
_STATES = get_args(ClusterState)
_VM_STATUSES = get_args(VmStatus)
_HAS_BEEN_READY = ("running", "degraded")  # cluster_state says the cluster was Ready at some point


@dataclass(frozen=True)
class _Seen:
    uid: str
    state: str
    vms: tuple[tuple[str, int], ...]  # (vm_status, count)
    conditions: tuple[tuple[str, str], ...]  # (type, "true" | "false" | "unknown")


def _seen(body: Body) -> _Seen:
    status = body.get("status") or {}
    nodes = [status.get("head_node_status"), *(status.get("current_workers") or {}).values()]
    vms = collections.Counter(str(node.get("vm_status") or "unknown") for node in nodes if isinstance(node, dict))
    conditions = tuple(
        sorted(
            (str(c.get("type")), str(c.get("status", "Unknown")).lower())
            for c in status.get("conditions") or []
            if isinstance(c, dict) and c.get("type")
        )
    )
    return _Seen(
        uid=str(body.get("metadata", {}).get("uid", "")),
        state=str(status.get("cluster_state") or "unknown"),
        vms=tuple(sorted(vms.items())),
        conditions=conditions,
    )


class ClusterGauges(Collector):
    """`note` and `forget` run on the event loop, `collect` on the metrics server's thread."""

    def __init__(self) -> None:
        self._clusters: dict[Key, _Seen] = {}
        self._states: collections.Counter[str] = collections.Counter()
        self._vms: collections.Counter[str] = collections.Counter()
        self._versions: dict[Key, str] = {}  # the resourceVersion last noted, by cluster
        self._lock = threading.Lock()

    def note(self, key: Key, body: Body) -> None:
        """The cluster as the watch last showed it."""
        noted = version(body)
        if noted and self._versions.get(key) == noted:
            return  # what a reconcile woken by one of its VMs, or by the resync, finds: nothing new
        first_sight = key not in self._versions
        self._versions[key] = noted
        seen = _seen(body)
        # Ready at first sight: Ready before this process started, so its next Ready is not its first. Later
        # Readies are this process's own status writes, which observe the time to Ready themselves.
        if first_sight and (seen.state in _HAS_BEEN_READY or (ConditionType.READY, "true") in seen.conditions):
            metrics.FIRST_READY.mark(seen.uid)
        with self._lock:
            previous = self._clusters.get(key)
            if previous == seen:
                return
            if previous is not None:
                self._drop(previous)
            self._clusters[key] = seen
            self._states[seen.state] += 1
            self._vms.update(dict(seen.vms))

    def forget(self, key: Key) -> None:
        """The cluster is gone: its series go, and its uid is no longer remembered."""
        self._versions.pop(key, None)
        with self._lock:
            previous = self._clusters.pop(key, None)
            if previous is not None:
                self._drop(previous)
        if previous is not None:
            metrics.FIRST_READY.forget(previous.uid)

    def clear(self) -> None:
        """The controller stopped: it no longer knows what the clusters say."""
        self._versions.clear()
        with self._lock:
            self._clusters.clear()
            self._states.clear()
            self._vms.clear()

    def _drop(self, seen: _Seen) -> None:
        self._states[seen.state] -= 1
        self._vms.subtract(dict(seen.vms))

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families({}, {}, [])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            states, vms, clusters = dict(self._states), dict(self._vms), list(self._clusters.items())
        yield from self._families(states, vms, clusters)

    @staticmethod
    def _families(
        states: dict[str, int], vms: dict[str, int], clusters: list[tuple[Key, _Seen]]
    ) -> list[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(metrics.CLUSTERS, "VMRayClusters by status.cluster_state", labels=["state"])
        for state in sorted({*_STATES, *(s for s, n in states.items() if n)}):
            by_state.add_metric([state], states.get(state, 0))
        by_vm_status = GaugeMetricFamily(metrics.VMS, "The clusters' VMs by vm_status", labels=["vm_status"])
        for vm_status in sorted({*_VM_STATUSES, *(s for s, n in vms.items() if n)}):
            by_vm_status.add_metric([vm_status], vms.get(vm_status, 0))
        conditions = GaugeMetricFamily(
            metrics.CLUSTER_CONDITION,
            "Each VMRayCluster's status conditions: 1 for the condition's current status, 0 for the others",
            labels=["namespace", "name", "type", "status"],
        )
        for (namespace, name), seen in clusters:
            for type_, current in seen.conditions:
                for status in CONDITION_STATUSES:
                    conditions.add_metric([namespace, name, type_, status], 1.0 if status == current else 0.0)
        return [by_state, by_vm_status, conditions]


CLUSTER_GAUGES = ClusterGauges()  # the process's one controller notes its clusters here
REGISTRY.register(CLUSTER_GAUGES)
