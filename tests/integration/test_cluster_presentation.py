"""What a DevOps user sees on a real API server: the Supervisor-ready sample, filled in as the user fills it in, is
accepted and becomes Ready; `kubectl get vmraycluster` tells its story column by column (with `-o wide` too); and
the operator publishes its nodes' Ray metrics addresses for Prometheus."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.clusters import delete_cluster, get_cluster, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api.contract import RAY_METRICS_EXPORT_PORT
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import samples
from vmray_operator.local.tools import tool_path

pytestmark = pytest.mark.simulator

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "vmraycluster-supervisor.yaml"
PASSWORD_HASH = "$6$test1234$9/BUZHNkvq.c1miDDMG5cHLmM4V7gbYdGuF0//3gSIh//DOyi7ypPCs6EAA9b8/tidHottL6UG0tG/RqTgAAi/"


def _filled(namespace: str) -> str:
    """The sample with its placeholders replaced, as a user does it with the names of their namespace."""
    table = {
        "<namespace>": namespace,
        "<worker VM class>": "best-effort-xlarge",
        "<head VM class>": "best-effort-xlarge",
        "<storage class>": samples.STORAGE_CLASS,
        "<VM image>": samples.VM_IMAGE,
    }
    text = SAMPLE.read_text()
    for placeholder, value in table.items():
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    return text


def _values(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for value in node.values() for v in _values(value)]
    if isinstance(node, list):
        return [v for value in node for v in _values(value)]
    return [node]


async def _kubectl(kubeconfig: Path, *args: str, check: bool = True) -> str:
    """kubectl's output; with check=False its error output when it fails."""
    process = await asyncio.create_subprocess_exec(
        str(tool_path("kubectl")),
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    if check:
        assert process.returncode == 0, err.decode()
    return out.decode() if process.returncode == 0 else err.decode()


def _table(text: str) -> list[dict[str, str]]:
    """kubectl's table output as rows by column name, cut where the header's columns start (an empty cell is blank)."""
    header, *lines = text.rstrip().splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{header[a:b].strip(): line[a:b].strip() for a, b in bounds} for line in lines]


async def test_the_supervisor_sample_becomes_ready_and_kubectl_get_tells_its_story(
    kube: Kube, namespace: str, operator: Controller, kubeconfig: Path, tmp_path: Path
) -> None:
    text = _filled(namespace)
    body = yaml.safe_load(text)
    assert not [v for v in _values(body) if isinstance(v, str) and "<" in v], "a placeholder is left"
    assert "api_server" not in body["spec"]  # the install's address
    assert "vm_password_salt_hash" not in body["spec"]["common_node_config"]
    secret = body["spec"]["common_node_config"]["vm_password_secret"]
    await kube.create(
        r.SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret["name"], "namespace": namespace},
            "data": {secret["key"]: base64.b64encode(PASSWORD_HASH.encode()).decode()},
        },
        namespace,
    )
    (tmp_path / "cluster.yaml").write_text(text)
    name = body["metadata"]["name"]
    await _kubectl(kubeconfig, "apply", "-f", str(tmp_path / "cluster.yaml"))
    try:
        cluster = await wait_condition(kube, namespace, name, "Ready", timeout=90)
        await _check_kubectl_get(kubeconfig, namespace, cluster)
        await _check_metrics_targets(kube, namespace, cluster)
        await _check_monitoring_addresses(kubeconfig, namespace, name)
    finally:
        await delete_cluster(kube, namespace, name, timeout=60)


async def _check_kubectl_get(kubeconfig: Path, namespace: str, cluster: dict[str, Any]) -> None:
    status = cluster["status"]
    ready = find(status["conditions"], "Ready")
    assert ready is not None
    (row,) = _table(await _kubectl(kubeconfig, "get", "vmraycluster", "-n", namespace))
    assert list(row) == [
        "NAME",
        "STATE",
        "REASON",
        "DESIRED-WORKERS",
        "AVAILABLE-WORKERS",
        "HEAD-IP",
        "AGE",
    ]
    assert row["NAME"] == cluster["metadata"]["name"]
    assert row["STATE"] == status["cluster_state"] == "running"
    assert row["REASON"] == ready["reason"]
    assert row["DESIRED-WORKERS"] == str(status["desired_workers"]) == "2"
    assert row["AVAILABLE-WORKERS"] == str(status["ready_workers"]) == "2"
    assert row["HEAD-IP"] == status["vm_service_status"]["ip"]
    (wide,) = _table(await _kubectl(kubeconfig, "get", "vmraycluster", "-n", namespace, "-o", "wide"))
    assert list(wide) == [*row, "RAY", "CPUS", "GPUS", "DASHBOARD"]
    assert {k: wide[k] for k in row if k != "AGE"} == {k: v for k, v in row.items() if k != "AGE"}
    # the fake simulator runs no Ray, so the operator asks none: Ray's columns are empty (filled: tests/unit)
    assert "ray" not in status
    assert (wide["RAY"], wide["CPUS"], wide["GPUS"]) == ("", "", "")
    assert wide["DASHBOARD"] == status["endpoints"]["dashboard"]


async def _published(kube: Kube, namespace: str, service_name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    service = await kube.get(r.SERVICES, service_name, namespace)
    assert service is not None
    slices = await kube.list(r.ENDPOINT_SLICES, namespace, f"kubernetes.io/service-name={service_name}")
    return service, slices


async def _check_metrics_targets(kube: Kube, namespace: str, cluster: dict[str, Any]) -> None:
    """The Service and slices list every node's address with Ray's metrics port, and stay as they are."""
    status, name = cluster["status"], cluster["metadata"]["name"]
    nodes = {status["head_node_status"]["ip"], *(w["ip"] for w in status["current_workers"].values())}

    async def listed() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        service, slices = await _published(kube, namespace, f"ray-metrics-{name}")
        found = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
        return (service, slices) if found == nodes else None

    service, slices = await wait_for(listed, timeout=30, what="every node's address in the metrics slices")
    assert service["spec"]["clusterIP"] == "None"
    assert not service["spec"].get("selector")
    assert {s["metadata"]["name"] for s in slices} == {f"ray-metrics-{name}-head", f"ray-metrics-{name}-workers"}
    vms = {vm["metadata"]["name"] for vm in await kube.list(r.VIRTUAL_MACHINES, namespace)}
    assert {e["targetRef"]["name"] for s in slices for e in s["endpoints"]} == vms
    assert all(s["ports"] == [{"name": "metrics", "protocol": "TCP", "port": RAY_METRICS_EXPORT_PORT}] for s in slices)

    # A reconcile of the converged cluster writes none of them again (what the API server stores is what it wants).
    versions = {b["metadata"]["name"]: b["metadata"]["resourceVersion"] for b in (service, *slices)}
    await kube.patch(r.VMRAYCLUSTERS, name, {"metadata": {"annotations": {"test/poke": "1"}}}, namespace)
    await asyncio.sleep(2)
    assert await get_cluster(kube, namespace, name) is not None
    service, slices = await _published(kube, namespace, f"ray-metrics-{name}")
    assert {b["metadata"]["name"]: b["metadata"]["resourceVersion"] for b in (service, *slices)} == versions


async def _check_monitoring_addresses(kubeconfig: Path, namespace: str, name: str) -> None:
    """spec.monitoring takes plain http(s) addresses (they go into the head's environment) and nothing else."""

    async def patched(prometheus_url: str) -> str:
        patch = json.dumps({"spec": {"monitoring": {"prometheus_url": prometheus_url}}})
        args = ("patch", "vmraycluster", name, "-n", namespace, "--type=merge", "-p", patch, "--dry-run=server")
        return await _kubectl(kubeconfig, *args, check=False)

    assert "patched" in await patched("http://prometheus.monitoring.example.com:9090")
    refused = await patched("http://prometheus:9090 $(reboot)")
    assert "spec.monitoring.prometheus_url" in refused, refused
