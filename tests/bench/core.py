"""Benchmark of the core reconcile (prints figures; asserts no wall-clock time):

- time and operator memory for N clusters of 1 head + W workers to converge (fake simulator);
- latency from a VM getting its IP to the cluster's status showing it (p50, p95, p99);
- API writes per cluster while everything is Ready and idle (target 0);
- API requests per cluster creation against the number of objects created.

    python -m tests.bench.core --clusters 50 --workers 4 --idle 120
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
import yaml

from tests.bench.harness import bench_cloud, percentile
from vmray_operator.api import contract
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.kube.discovery import vmop_version

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "vmraycluster.yaml"


class Watcher:
    """Records when each VM first shows an IP and when its cluster's status first shows that IP."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api = kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        )
        self.vm_ip_at: dict[str, float] = {}
        self.status_ip_at: dict[str, float] = {}
        self.ready_at: dict[str, float] = {}
        self.restarts = 0  # watches the API server could not resume at once
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(p,), daemon=True) for p in ("virtualmachines", "vmrayclusters")
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self, plural: str) -> None:
        group, version = (
            ("vmoperator.vmware.com", "v1alpha2") if plural == "virtualmachines" else ("vmray.broadcom.com", "v1alpha1")
        )
        resumed_from: str | None = None  # a watch goes on from the last version it saw, with no gap and no re-list
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()
            since = {"resource_version": resumed_from} if resumed_from else {}
            stream = watch.stream(
                self.api.list_cluster_custom_object, group, version, plural, timeout_seconds=30, **since
            )
            try:
                for event in stream:
                    now = time.monotonic()
                    self._observe(plural, event["object"], now)
                    resumed_from = watch.resource_version
                    if self._stop.is_set():
                        return
            except kubernetes.client.ApiException as error:
                # A loaded API server's watch cache can lag the version a watch resumes from (504 "Too large
                # resource version"): asked again a moment later. A version compacted away (410) means listing
                # everything again, where the first time each thing was seen stays.
                if error.status not in (410, 504):
                    raise
                self.restarts += 1
                resumed_from = None if error.status == 410 else resumed_from
                time.sleep(1)
            except Exception:
                if self._stop.is_set():
                    return  # the control plane went down after the figures were taken
                raise

    def _observe(self, plural: str, body: dict[str, Any], now: float) -> None:
        status = body.get("status") or {}
        if plural == "virtualmachines":
            if (status.get("network") or {}).get("primaryIP4"):
                self.vm_ip_at.setdefault(body["metadata"]["name"], now)
            return
        nodes = {
            **(
                {body["metadata"]["labels"]["vmray.kubernetes.io/head-nounce"]: status.get("head_node_status") or {}}
                if status.get("head_node_status")
                else {}
            ),
            **(status.get("current_workers") or {}),
        }
        for name, node in nodes.items():
            if node.get("ip"):
                key = name if "-w-" in name else f"{body['metadata']['name']}-h-{name}"
                self.status_ip_at.setdefault(key, now)
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready" and c["status"] == "True"]
        if ready:
            self.ready_at.setdefault(body["metadata"]["name"], now)


async def _owned_objects(kubeconfig: Path, namespace: str, cluster: str) -> int:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    try:
        version = await vmop_version(kube)
        kinds = [r.VIRTUAL_MACHINES.at_version(version), r.VIRTUAL_MACHINE_SERVICES.at_version(version)]
        kinds += [r.SECRETS, r.CONFIG_MAPS, r.SERVICE_ACCOUNTS, r.ROLES, r.ROLE_BINDINGS]
        kinds += [r.SERVICES, r.ENDPOINT_SLICES]
        selector = f"{contract.LABEL_CLUSTER}={cluster}"
        return sum([len(await kube.list(kind, namespace, selector)) for kind in kinds])
    finally:
        kube.close()


def owned_objects(kubeconfig: Path, namespace: str, cluster: str) -> int:
    """How many objects the operator made for one cluster (every kind it labels with the cluster's name)."""
    return asyncio.run(_owned_objects(kubeconfig, namespace, cluster))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of idle time to count writes over")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every cluster to be Ready")
    parser.add_argument(
        "--operator-source",
        type=Path,
        help="another checkout's operator/ directory: its operator runs on this local cloud, for comparing code",
    )
    args = parser.parse_args()

    namespace = "bench"
    with (
        tempfile.TemporaryDirectory(prefix="vmray-bench-") as tmp,
        bench_cloud(Path(tmp), [namespace], operator_source=args.operator_source) as bench,
    ):
        api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(bench.kubeconfig)))
        watcher = Watcher(bench.kubeconfig)
        watcher.start()
        time.sleep(1)
        before, reconciles_before = bench.operator_requests(), bench.operator_reconciles()
        cpu_before = bench.cpu_seconds()
        template = yaml.safe_load(SAMPLE.read_text())
        worker_type = template["spec"]["common_node_config"]["available_node_types"]["ray.worker.default"]
        worker_type["min_workers"] = args.workers
        worker_type["max_workers"] = max(args.workers, worker_type["max_workers"])
        template["spec"]["common_node_config"]["max_workers"] = max(args.workers, 5)
        started = time.monotonic()
        names = [f"bench-{i:03d}" for i in range(args.clusters)]
        for name in names:
            body = {**template, "metadata": {"name": name, "namespace": namespace}}
            api.create_namespaced_custom_object("vmray.broadcom.com", "v1alpha1", namespace, "vmrayclusters", body)
        told = started
        while len(watcher.ready_at) < len(names):
            time.sleep(0.2)
            if time.monotonic() - told >= 60:  # a long run says how far it is
                told = time.monotonic()
                ready = len(watcher.ready_at)
                print(f"{ready} of {len(names)} clusters Ready after {told - started:.0f} s", flush=True)
            if time.monotonic() - started > args.timeout:
                print(f"only {len(watcher.ready_at)} of {len(names)} clusters Ready after {args.timeout:.0f} s")
                return 1
        converged = time.monotonic() - started
        cpu_after = bench.cpu_seconds()
        rss, peak = bench.operator_memory_mib()
        time.sleep(3)  # let the last status writes land before counting
        after_create, reconciles = bench.operator_requests(), bench.operator_reconciles() - reconciles_before
        requests = sum(after_create.values()) - sum(before.values())
        by_method = {m: (after_create.get(m, 0) - before.get(m, 0)) / args.clusters for m in sorted(after_create)}
        objects_per_cluster = owned_objects(bench.kubeconfig, namespace, names[0])
        latencies = [
            watcher.status_ip_at[vm] - watcher.vm_ip_at[vm] for vm in watcher.vm_ip_at if vm in watcher.status_ip_at
        ]
        idle_start = bench.operator_requests()
        time.sleep(args.idle)
        idle_end = bench.operator_requests()
        idle_writes = sum(v for k, v in idle_end.items() if k != "GET") - sum(
            v for k, v in idle_start.items() if k != "GET"
        )
        watcher.stop()

        print(f"clusters: {args.clusters} x (1 head + {args.workers} workers)")
        print(f"time to all Ready: {converged:.1f} s")
        print(f"operator memory: {rss:.0f} MiB now, {peak:.0f} MiB peak")
        print(
            f"API requests per cluster creation: {requests / args.clusters:.1f} "
            f"for {objects_per_cluster} objects ({requests / args.clusters / objects_per_cluster:.2f}x): "
            + ", ".join(f"{method} {count:.1f}" for method, count in by_method.items())
        )
        print(
            f"VM IP -> cluster status latency over {len(latencies)} VMs: "
            f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
        )
        if watcher.restarts:  # each a gap of a second or more, in which what happened is seen late
            print(f"the bench's watches could not be resumed at once {watcher.restarts} times")
        print(f"reconciles per cluster until all Ready: {reconciles / args.clusters:.1f}")
        print(
            "CPU seconds from the first apply to all Ready: "
            + ", ".join(f"{name} {cpu_after[name] - cpu_before.get(name, 0.0):.1f}" for name in sorted(cpu_after))
        )
        print(f"API writes per cluster during {args.idle:.0f} s idle: {idle_writes / args.clusters:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
