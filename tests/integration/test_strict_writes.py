"""The operator writes strictly: a field the API server does not know is refused and told, never dropped."""

from __future__ import annotations

import pytest

from tests.support.clusters import cluster_vms, delete_cluster, sample, wait_condition
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube

pytestmark = pytest.mark.simulator


async def test_a_misspelt_network_key_is_refused_and_named(kube: Kube, namespace: str, operator: Controller) -> None:
    # common_node_config.network goes to every VM's spec.network as written; "nameserver" is not a field there
    # ("nameservers" is). Without strict writes the API server would drop it and the VMs would run without it.
    network = {"interfaces": [{"name": "eth0", "network": {"name": "primary"}, "nameserver": ["10.0.0.2"]}]}
    body = sample(namespace, "typo")
    body["spec"]["common_node_config"]["network"] = network
    await kube.create(r.VMRAYCLUSTERS, body, namespace)

    cluster = await wait_condition(kube, namespace, "typo", "Ready", "False", reason="ApplyFailed", timeout=30)
    ready = find(cluster["status"]["conditions"], "Ready")
    assert ready is not None
    message = ready["message"]
    head = f"typo-h-{cluster['metadata']['labels']['vmray.kubernetes.io/head-nounce']}"
    assert f"VirtualMachine {head}" in message, message
    assert 'unknown field "spec.network.interfaces[0].nameserver"' in message, message
    assert await cluster_vms(kube, namespace, "typo") == {}  # no VM was made without the setting

    await delete_cluster(kube, namespace, "typo")  # the network is immutable: the fix is a new cluster
    network["interfaces"][0]["nameservers"] = network["interfaces"][0].pop("nameserver")
    fixed = sample(namespace, "fixed")
    fixed["spec"]["common_node_config"]["network"] = network
    await kube.create(r.VMRAYCLUSTERS, fixed, namespace)
    await wait_condition(kube, namespace, "fixed", "Ready", timeout=60)
    vms = await cluster_vms(kube, namespace, "fixed")
    assert len(vms) == 3
    assert all(vm["spec"]["network"]["interfaces"][0]["nameservers"] == ["10.0.0.2"] for vm in vms.values())
    await delete_cluster(kube, namespace, "fixed")
