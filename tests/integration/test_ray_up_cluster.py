"""Ray's own vSphere provider code against the operator on the real API server: a cluster made by `ray up`
(the provider creates the VMRayCluster, adds and removes a worker and reads the state back), and the
provider as the head's autoscaler runs it, with the cluster's own token under the admission policy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kubernetes.config.kube_config
import pytest
from ray.autoscaler._private.vsphere import cluster_operator_client as ray_vsphere
from ray.autoscaler._private.vsphere.node_provider import VsphereWcpNodeProvider
from ray.autoscaler.tags import TAG_RAY_NODE_NAME, TAG_RAY_USER_NODE_TYPE

from tests.support.clusters import cluster_token, cluster_vms, delete_cluster, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.render import identity

pytestmark = pytest.mark.simulator


@pytest.fixture
def ray_cli_key(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`ray up` on a laptop: no service account token, the kubeconfig of the person running it (what
    $KUBECONFIG names; the kubernetes package reads it once, at import), and the launcher's SSH key."""
    assert ray_vsphere.SERVICE_ACCOUNT_TOKEN is None
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    key = tmp_path / "ray-bootstrap-key.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nnot a real key\n-----END RSA PRIVATE KEY-----\n")
    return key


def _ray_client(namespace: str, private_key: Path) -> Any:
    provider = {
        "vsphere_config": {
            "namespace": namespace,
            "vm_image": "vmi-7289e7d90a3c53e73",
            "storage_class": "vsan-default-storage-policy",
        }
    }
    cluster_config = {
        "max_workers": 2,
        "head_setup_commands": ["pip list"],
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"node_config": {"vm_class": "best-effort-small"}, "resources": {}},
            "worker": {
                "node_config": {"vm_class": "best-effort-small"},
                "resources": {"CPU": 2},
                "min_workers": 1,
                "max_workers": 2,
            },
        },
        "auth": {"ssh_user": "ray", "ssh_private_key": str(private_key)},
        "docker": {"image": "rayproject/ray:2.60.0"},
    }
    return ray_vsphere.ClusterOperatorClient("from-ray", provider, cluster_config)


async def test_a_ray_up_cluster_works_with_rays_own_provider(
    kube: Kube, namespace: str, operator: Controller, ray_cli_key: Path
) -> None:
    client = _ray_client(namespace, ray_cli_key)
    head_tags = {TAG_RAY_NODE_NAME: "ray-from-ray-head", TAG_RAY_USER_NODE_TYPE: "ray.head.default"}
    created = await asyncio.to_thread(client.create_nodes, head_tags, 1, {})
    (head,) = created
    assert head.startswith("from-ray-h-")

    cluster = await wait_condition(kube, namespace, "from-ray", "HeadReady")
    assert cluster["metadata"]["labels"][contract.CREATED_BY_LABEL] == "ray-cli"
    assert set(await cluster_vms(kube, namespace, "from-ray")) == {head}  # Ray's launcher keeps the floor
    # Ray's launcher brings the autoscaler of a `ray up` cluster: the identity the operator makes it only lets
    # its nodes read what they fetch at boot, their TLS certificates and Ray's token.
    role = await kube.get(r.ROLES, identity.service_account_name("from-ray"), namespace)
    assert role is not None
    fetched = ["from-ray-ray-tls", "from-ray-ray-auth"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": fetched, "verbs": ["get"]}]
    assert await asyncio.to_thread(client.is_vm_power_on, head)
    assert await asyncio.to_thread(client.get_vm_external_ip, head) == cluster["status"]["vm_service_status"]["ip"]

    worker_tags = {TAG_RAY_NODE_NAME: "ray-from-ray-worker", TAG_RAY_USER_NODE_TYPE: "worker"}
    (worker,) = await asyncio.to_thread(client.create_nodes, worker_tags, 1, {})

    async def worker_up() -> bool:
        return bool(await asyncio.to_thread(client.is_vm_power_on, worker))

    await wait_for(worker_up, what=f"{worker} running as Ray's provider sees it")
    nodes, tags = await asyncio.to_thread(client.list_vms, {})
    assert set(nodes) == {head, worker}
    assert tags[worker]["ray-node-status"] == "up-to-date"
    assert tags[worker]["ray-user-node-type"] == "worker"
    assert await asyncio.to_thread(client.safe_to_scale)

    await asyncio.to_thread(client.delete_node, worker)

    async def worker_gone() -> bool:
        current = await get_cluster(kube, namespace, "from-ray") or {}
        return worker not in current.get("status", {}).get("current_workers", {}) and worker not in await cluster_vms(
            kube, namespace, "from-ray"
        )

    await wait_for(worker_gone, what=f"{worker} removed")
    await delete_cluster(kube, namespace, "from-ray")


async def test_rays_provider_on_the_head_scales_with_the_clusters_token(
    kube: Kube, namespace: str, operator: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's provider as the head's autoscaler runs it: SVC_ACCOUNT_TOKEN (read once, at import), the API server
    address and its CA, no cluster config of its own (max_workers comes from the cluster), and Ray's
    ClusterOperatorClient adding a worker (create_nodes) and taking it away (delete_node), under the policy."""
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "scaled"), namespace)
    await wait_condition(kube, namespace, "scaled", "Ready")
    monkeypatch.setattr(ray_vsphere, "SERVICE_ACCOUNT_TOKEN", await cluster_token(kube, namespace, "scaled"))
    monkeypatch.setattr(VsphereWcpNodeProvider, "cluster_config", None)  # set only where `ray up` bootstraps
    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    configuration = kube.configuration
    vsphere_config = {
        "namespace": namespace,
        "api_server": configuration.host.removeprefix("https://"),
        "ca_cert": configuration.ssl_ca_cert,
    }
    provider = await asyncio.to_thread(VsphereWcpNodeProvider, {"vsphere_config": vsphere_config}, "scaled")
    assert provider.client.max_worker_nodes == 5
    assert await asyncio.to_thread(provider.safe_to_scale)

    worker_tags = {TAG_RAY_NODE_NAME: "ray-scaled-worker", TAG_RAY_USER_NODE_TYPE: "ray.worker.default"}
    (worker,) = await asyncio.to_thread(provider.create_node, {}, worker_tags, 1)

    async def worker_up() -> bool:
        return bool(await asyncio.to_thread(provider.is_running, worker))

    await wait_for(worker_up, what=f"{worker}, added by Ray's provider with the token, running")
    assert worker in await asyncio.to_thread(provider.non_terminated_nodes, {})
    await asyncio.to_thread(provider.terminate_node, worker)

    async def worker_gone() -> bool:
        return worker not in await cluster_vms(kube, namespace, "scaled")

    await wait_for(worker_gone, what=f"{worker}, removed by Ray's provider with the token")
    desired = ((await get_cluster(kube, namespace, "scaled")) or {})["spec"]["autoscaler_desired_workers"]
    assert worker not in desired
    assert len(desired) == 2
    await delete_cluster(kube, namespace, "scaled")
