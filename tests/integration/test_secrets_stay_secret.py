"""No secret leaves the Secrets it belongs in: not into VirtualMachines, the cluster's status, Events or the
operator's logs. The secrets: the VM password hash, the registry password, the autoscaler's token, Ray's token,
and the private keys of Ray's TLS (which no bootstrap holds either)."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from tests.support.clusters import sample, wait_condition
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.render.names import ClusterSecret

pytestmark = pytest.mark.simulator

PASSWORD_HASH = "$6$pepper42$Q1w2E3r4T5y6U7i8O9p0AsDfGhJkLzXcVbNm.qWeRtYuIoPaSdFgHjKlZxCvBnM1234567890abcdEF/"
REGISTRY_PASSWORD = "registry-pa55-Zq8!"


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


async def test_no_secret_in_vms_status_events_or_logs(
    kube: Kube, namespace: str, operator: Controller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await kube.create(r.SECRETS, _secret("ray-login", namespace, {"password_hash": PASSWORD_HASH}), namespace)
    await kube.create(
        r.SECRETS,
        _secret("pull", namespace, {"username": "puller", "password": REGISTRY_PASSWORD, "registry": "r.example"}),
        namespace,
    )
    body = sample(namespace, "sealed", docker_config={"auth_secret_name": "pull"})
    common = body["spec"]["common_node_config"]
    del common["vm_password_salt_hash"]
    common["vm_password_secret"] = {"name": "ray-login"}
    await kube.create(r.VMRAYCLUSTERS, body, namespace)
    cluster = await wait_condition(kube, namespace, "sealed", "Ready")

    token_secret = await kube.get(r.SECRETS, ClusterSecret.SA_TOKEN.of("sealed"), namespace)
    assert token_secret is not None
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    secrets = {
        "password hash": PASSWORD_HASH,
        "registry password": REGISTRY_PASSWORD,
        "registry auth": base64.b64encode(f"puller:{REGISTRY_PASSWORD}".encode()).decode(),
        "token": token,
    }
    # Ray's token and Ray's TLS keys (the cluster CA's, every node's and the Ray client's): no VM's bootstrap
    # holds any of them either; the nodes fetch theirs at boot.
    ray_token = await kube.get(r.SECRETS, ClusterSecret.RAY_TOKEN.of("sealed"), namespace)
    assert ray_token is not None
    assert cluster["status"]["endpoints"]["auth_token_secret"] == ClusterSecret.RAY_TOKEN.of("sealed")
    never_in_bootstrap = {"Ray's token": base64.b64decode(ray_token["data"]["token"]).decode()}
    client = await kube.get(r.SECRETS, ClusterSecret.RAY_CLIENT.of("sealed"), namespace)
    assert client is not None
    assert cluster["status"]["endpoints"]["client_tls_secret"] == ClusterSecret.RAY_CLIENT.of("sealed")
    never_in_bootstrap["the Ray client's key"] = base64.b64decode(client["data"]["tls.key"]).decode().splitlines()[1]
    for name in (ClusterSecret.CA.of("sealed"), ClusterSecret.CERTIFICATES.of("sealed")):
        held = await kube.get(r.SECRETS, name, namespace)
        assert held is not None
        for key, value in held["data"].items():
            if key.endswith(".key"):
                secrets[f"private key {key}"] = base64.b64decode(value).decode().splitlines()[1]
    assert sum(what.startswith("private key") for what in secrets) >= 2

    # They did reach the VMs' bootstrap Secrets, where they belong.
    bootstrap = [
        base64.b64decode(s["data"]["user-data"]).decode()
        for s in await kube.list(r.SECRETS, namespace, "vmray.broadcom.com/cluster=sealed")
        if "user-data" in s.get("data", {})
    ]
    assert any(PASSWORD_HASH in text for text in bootstrap)
    assert any(secrets["registry auth"] in text for text in bootstrap)
    assert any(token in text for text in bootstrap)
    for what, value in never_in_bootstrap.items():
        assert not any(value in text for text in bootstrap), f"{what} is in a bootstrap Secret"
    secrets.update(never_in_bootstrap)

    await operator.reconciler.events.flush()
    places = {
        "VirtualMachines": json.dumps(await kube.list(r.VIRTUAL_MACHINES, namespace)),
        "VirtualMachineServices": json.dumps(await kube.list(r.VIRTUAL_MACHINE_SERVICES, namespace)),
        "the cluster's status": json.dumps(cluster["status"]),
        "Events": json.dumps(await kube.list(r.EVENTS, namespace)),
        "the operator's logs": "\n".join(record.getMessage() for record in caplog.records),
    }
    # the scan reads real content
    assert "created VirtualMachine" in places["Events"]
    assert f"created VirtualMachine {namespace}/sealed-" in places["the operator's logs"]
    for place, text in places.items():
        for what, value in secrets.items():
            assert value not in text, f"the {what} appears in {place}"


async def test_a_missing_password_secret_is_a_condition_and_no_vm(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    body = sample(namespace, "nopass")
    del body["spec"]["common_node_config"]["vm_password_salt_hash"]
    body["spec"]["common_node_config"]["vm_password_secret"] = {"name": "later", "key": "hash"}
    await kube.create(r.VMRAYCLUSTERS, body, namespace)
    cluster = await wait_condition(kube, namespace, "nopass", "DependenciesReady", "False")
    condition = find(cluster["status"]["conditions"], "DependenciesReady")
    assert condition is not None
    assert "Secret later (key hash)" in condition["message"]
    assert await kube.list(r.VIRTUAL_MACHINES, namespace) == []
    await kube.create(r.SECRETS, _secret("later", namespace, {"hash": PASSWORD_HASH}), namespace)
    await wait_condition(kube, namespace, "nopass", "Ready")
