"""Two clusters of a namespace whose derived names met under the earlier naming: cluster `a` with a worker type
`B_HEaD__x-y` and cluster `a-worker-b` with a head type `x-y` both had the bootstrap Secret
`a-worker-b-head-x-y-cc96fe` (the type's slug, and a 24-bit digest that was searched for to match). Both are
Ready now, each with its own Secrets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clusters import delete_cluster, sample, wait_condition
from vmray_operator.api import contract
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.render import names

pytestmark = pytest.mark.simulator


def _with_types(namespace: str, name: str, head: str, worker: str) -> dict[str, Any]:
    body = sample(namespace, name)
    spec = body["spec"]
    spec["head_node"]["node_type"] = head
    spec["common_node_config"]["available_node_types"] = {
        head: {"vm_class": "best-effort-small"},
        worker: {"vm_class": "best-effort-small", "min_workers": 1, "max_workers": 2},
    }
    return body


async def test_clusters_whose_names_collided_before_are_both_ready(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, _with_types(namespace, "a", "head", "B_HEaD__x-y"), namespace)
    await kube.create(r.VMRAYCLUSTERS, _with_types(namespace, "a-worker-b", "x-y", "w"), namespace)
    for name in ("a", "a-worker-b"):
        ready = await wait_condition(kube, namespace, name, "Ready", timeout=90)
        assert ready["status"]["cluster_state"] == "running"

    secrets = {s["metadata"]["name"]: s for s in await kube.list(r.SECRETS, namespace, contract.LABEL_CLUSTER)}
    mine = names.bootstrap_secret_name("a", "worker", "B_HEaD__x-y")
    theirs = names.bootstrap_secret_name("a-worker-b", "head", "x-y")
    assert mine != theirs
    assert secrets[mine]["metadata"]["labels"][contract.LABEL_CLUSTER] == "a"
    assert secrets[theirs]["metadata"]["labels"][contract.LABEL_CLUSTER] == "a-worker-b"
    for name in ("a", "a-worker-b"):
        await delete_cluster(kube, namespace, name)
