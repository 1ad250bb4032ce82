"""Helpers to make and watch VMRayClusters in tests."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.render.names import ClusterSecret

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "vmraycluster.yaml"


def sample(namespace: str, name: str = "test-ray", **spec_overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    body["metadata"] = {"name": name, "namespace": namespace}
    body["spec"].update(copy.deepcopy(spec_overrides))
    return body


def as_token(kube: Kube, token: str) -> Kube:
    """A client that authenticates with a bearer token instead of the test's admin certificate."""
    configuration = copy.copy(kube.configuration)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.cert_file = None
    configuration.key_file = None
    return Kube(configuration, concurrency=2)


async def cluster_token(kube: Kube, namespace: str, cluster: str) -> str:
    """The token Kubernetes issued to the cluster's ServiceAccount."""
    secret = await kube.get(r.SECRETS, ClusterSecret.SA_TOKEN.of(cluster), namespace)
    assert secret is not None
    assert secret["type"] == "kubernetes.io/service-account-token"
    return base64.b64decode(secret["data"]["token"]).decode()


async def get_cluster(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return await kube.get(r.VMRAYCLUSTERS, name, namespace)


async def wait_condition(
    kube: Kube,
    namespace: str,
    name: str,
    type_: str,
    status: str = "True",
    reason: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def probe() -> dict[str, Any] | None:
        cluster = await get_cluster(kube, namespace, name)
        seen[:] = (cluster or {}).get("status", {}).get("conditions") or []
        condition = find(seen, type_)
        if condition and condition["status"] == status and (reason is None or condition["reason"] == reason):
            return cluster
        return None

    try:
        result: dict[str, Any] = await wait_for(probe, timeout=timeout, what=f"{name} {type_}={status} {reason or ''}")
    except AssertionError as timeout_error:
        # What the cluster said last, so that a failure in CI says why without a rerun.
        said = "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message', '')}" for c in seen)
        raise AssertionError(f"{timeout_error}; the cluster's conditions: {said or 'none'}") from None
    return result


async def cluster_vms(kube: Kube, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    items = await kube.list(r.VIRTUAL_MACHINES, namespace, f"{contract.LABEL_CLUSTER}={name}")
    return {vm["metadata"]["name"]: vm for vm in items}


async def delete_cluster(kube: Kube, namespace: str, name: str, timeout: float = 60.0) -> None:
    """Deletes the cluster and waits until it is gone, that is until the operator released its finalizer."""
    await kube.delete(r.VMRAYCLUSTERS, name, namespace)

    async def gone() -> bool:
        return await get_cluster(kube, namespace, name) is None

    await wait_for(gone, timeout=timeout, what=f"{name} deleted (finalizer released)")
