"""Benchmark of the operator's overhead (prints figures; asserts no wall-clock time): the operator creating
N worker VMs for one cluster, from one merge patch of spec.autoscaler_desired_workers as Ray's autoscaler
sends it, against a bare client loop creating the same N VirtualMachine objects, in one run.

    python -m tests.bench.overhead --workers 200
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import kubernetes.client
import kubernetes.config
import yaml

from tests.bench.harness import bench_cloud
from vmray_operator.render import names

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "vmraycluster.yaml"
GROUP, VMOP = "vmray.broadcom.com", "vmoperator.vmware.com"


def _cluster(namespace: str, workers: int) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    body["metadata"] = {"name": "wide", "namespace": namespace}
    common = body["spec"]["common_node_config"]
    common["max_workers"] = workers
    common["available_node_types"]["ray.worker.default"].update(min_workers=0, max_workers=workers)
    return body


def _wait(what: str, done: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmray-bench-") as tmp, bench_cloud(Path(tmp), ["bare", "op"]) as bench:
        client = kubernetes.config.new_client_from_config(str(bench.kubeconfig))
        api = kubernetes.client.CustomObjectsApi(client)

        def vms(namespace: str) -> list[dict[str, Any]]:
            listed = cast(
                dict[str, Any], api.list_namespaced_custom_object(VMOP, "v1alpha5", namespace, "virtualmachines")
            )
            items: list[dict[str, Any]] = listed["items"]
            return items

        def workers_of(namespace: str) -> int:
            return sum(1 for vm in vms(namespace) if vm["metadata"]["name"].startswith("wide-w-"))

        # The operator: a Ready cluster without workers, then one patch asking for N of them.
        api.create_namespaced_custom_object(GROUP, "v1alpha1", "op", "vmrayclusters", _cluster("op", args.workers))

        def ready() -> bool:
            cluster = cast(
                dict[str, Any], api.get_namespaced_custom_object(GROUP, "v1alpha1", "op", "vmrayclusters", "wide")
            )
            status = cluster.get("status")
            return any(c["type"] == "Ready" and c["status"] == "True" for c in (status or {}).get("conditions", []))

        _wait("the cluster is not Ready", ready)
        wanted = {names.worker_vm_name("wide", f"{i:08d}"): "ray.worker.default" for i in range(args.workers)}
        started = time.monotonic()
        api.patch_namespaced_custom_object(
            GROUP, "v1alpha1", "op", "vmrayclusters", "wide", {"spec": {"autoscaler_desired_workers": wanted}}
        )
        _wait("the operator did not create every worker", lambda: workers_of("op") == args.workers)
        operator_seconds = time.monotonic() - started

        # The floor: the same N VirtualMachine bodies, created by a plain loop of the same client library.
        bodies = [vm for vm in vms("op") if vm["metadata"]["name"].startswith("wide-w-")]
        started = time.monotonic()
        for vm in bodies:
            body = copy.deepcopy(vm)
            meta = body["metadata"]
            body["metadata"] = {"name": meta["name"], "labels": {"bench": "bare"}, "annotations": meta["annotations"]}
            body.pop("status", None)
            api.create_namespaced_custom_object(VMOP, "v1alpha5", "bare", "virtualmachines", body)
        bare_seconds = time.monotonic() - started

        print(f"operator creating {args.workers} worker VMs from one patch: {operator_seconds:.2f} s")
        print(f"bare client loop creating the same {args.workers} VMs:      {bare_seconds:.2f} s")
        print(f"ratio: {operator_seconds / bare_seconds:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
