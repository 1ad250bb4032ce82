"""The operator reads Secrets its users may not: a spec that names one of them (another cluster's CA key, a
ServiceAccount token) or a value that is no password hash is refused naming the field, and nothing of such a
Secret reaches any VM's bootstrap."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.clusters import delete_cluster, sample, wait_condition
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.render import tls
from vmray_operator.render.names import ClusterSecret

pytestmark = pytest.mark.simulator


def _with_password_secret(namespace: str, name: str, secret: str, key: str) -> dict[str, Any]:
    body = sample(namespace, name)
    del body["spec"]["common_node_config"]["vm_password_salt_hash"]
    body["spec"]["common_node_config"]["vm_password_secret"] = {"name": secret, "key": key}
    return body


async def _bootstrap_texts(kube: Kube, namespace: str) -> dict[str, list[str]]:
    """The user-data of every bootstrap Secret of the namespace, by cluster."""
    texts: dict[str, list[str]] = {}
    for secret in await kube.list(r.SECRETS, namespace):
        if "user-data" in (secret.get("data") or {}):
            cluster = secret["metadata"]["labels"][contract.LABEL_CLUSTER]
            texts.setdefault(cluster, []).append(base64.b64decode(secret["data"]["user-data"]).decode())
    return texts


async def _spec_problem(kube: Kube, namespace: str, name: str) -> str:
    cluster = await wait_condition(kube, namespace, name, "SpecValid", "False", timeout=30)
    assert cluster["status"]["cluster_state"] == "pending"
    return str((find(cluster["status"]["conditions"], "SpecValid") or {}).get("message"))


async def test_another_clusters_secrets_and_non_hashes_are_refused_naming_the_field(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "victim"), namespace)
    await wait_condition(kube, namespace, "victim", "Ready")
    ca = await kube.get(r.SECRETS, ClusterSecret.CA.of("victim"), namespace)
    token = await kube.get(r.SECRETS, ClusterSecret.SA_TOKEN.of("victim"), namespace)
    assert ca is not None
    assert token is not None
    stolen = {
        "the victim's CA key": base64.b64decode(ca["data"][tls.CA_KEY_KEY]).decode().splitlines()[1],
        "the victim's token": base64.b64decode(token["data"]["token"]).decode(),
    }
    plain = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain"}, "stringData": {"pw": "hunter2"}}
    await kube.create(r.SECRETS, plain, namespace)

    attempts = {
        "ca": (ClusterSecret.CA.of("victim"), tls.CA_KEY_KEY, "the operator keeps it for a cluster"),
        "tok": (ClusterSecret.SA_TOKEN.of("victim"), "token", "it holds a ServiceAccount token"),
        "pw": ("plain", "pw", "is not a crypt(3) password hash"),
    }
    for name, (secret, key, _) in attempts.items():
        await kube.create(r.VMRAYCLUSTERS, _with_password_secret(namespace, name, secret, key), namespace)
    for name, (secret, _, why) in attempts.items():
        problem = await _spec_problem(kube, namespace, name)
        assert problem.startswith("common_node_config.vm_password_secret:"), problem
        assert secret in problem
        assert why in problem
        assert "hunter2" not in problem

    registry = sample(namespace, "reg", docker_config={"auth_secret_name": ClusterSecret.CERTIFICATES.of("victim")})
    await kube.create(r.VMRAYCLUSTERS, registry, namespace)
    assert (await _spec_problem(kube, namespace, "reg")).startswith("docker_config.auth_secret_name:")

    texts = await _bootstrap_texts(kube, namespace)
    assert set(texts) == {"victim"}  # the refused clusters rendered nothing
    for text in texts["victim"]:  # and the victim's own nodes hold its token, never its CA's key
        assert stolen["the victim's CA key"] not in text
    vms = await kube.list(r.VIRTUAL_MACHINES, namespace)
    assert {vm["metadata"]["labels"]["vmray.broadcom.com/cluster"] for vm in vms} == {"victim"}
    for name in [*attempts, "reg", "victim"]:
        await delete_cluster(kube, namespace, name)
