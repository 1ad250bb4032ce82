"""A write the API server refuses is news for the cluster's owner: a Warning Event and a Ready reason that name
the object and quote the server, within seconds, cleared once the write goes through."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.clusters import delete_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Kube
from vmray_operator.render.names import ClusterSecret

pytestmark = pytest.mark.simulator

POLICIES, BINDINGS = r.ADMISSION_POLICIES, r.ADMISSION_POLICY_BINDINGS
REFUSAL = "workers need an approved change ticket"


@pytest.fixture
async def no_workers_policy(kube: Kube, namespace: str) -> AsyncIterator[str]:
    """A policy of the kind a Supervisor's admins install: no worker VMs in this namespace."""
    name = f"no-workers-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [contract.VMOP_GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE"],
                        "resources": ["virtualmachines"],
                    },
                    # only so the test can see the policy in force with an object that is valid without it
                    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]},
                ]
            },
            "validations": [{"expression": "!object.metadata.name.contains('-w-')", "message": REFUSAL}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }
    await kube.create(POLICIES, policy)
    await kube.create(BINDINGS, binding)
    yield name
    await kube.delete(BINDINGS, name)
    await kube.delete(POLICIES, name)


def _ready_message(cluster: dict[str, Any]) -> str:
    return str((find(cluster["status"]["conditions"], "Ready") or {}).get("message"))


async def _warnings(kube: Kube, namespace: str, cluster: str) -> list[dict[str, Any]]:
    events = await kube.list(r.EVENTS, namespace)
    return [e for e in events if e["involvedObject"]["name"] == cluster and e["type"] == "Warning"]


async def test_a_refused_vm_shows_in_status_and_events_and_clears(
    kube: Kube, namespace: str, operator: Controller, no_workers_policy: str
) -> None:
    # The policy takes effect once the API server has loaded it: prove it refuses before the cluster starts.
    async def refuses() -> bool:
        probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe-w-x"}}
        try:
            await kube.create(r.CONFIG_MAPS, probe, namespace)
        except ApiError as error:
            return REFUSAL in error.message
        await kube.delete(r.CONFIG_MAPS, "probe-w-x", namespace)
        return False

    await wait_for(refuses, timeout=30, what="the test policy in force")
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "refused"), namespace)
    started = time.monotonic()
    cluster = await wait_condition(kube, namespace, "refused", "Ready", "False", reason="ApplyFailed", timeout=30)
    elapsed = time.monotonic() - started

    message = _ready_message(cluster)
    workers = sorted(cluster["spec"]["autoscaler_desired_workers"])
    assert any(f"VirtualMachine {w}" in message for w in workers), message
    assert REFUSAL in message
    assert cluster["status"]["cluster_state"] == "failed"

    await operator.reconciler.events.flush()
    warnings = await wait_for(lambda: _warnings(kube, namespace, "refused"), what="a Warning Event")
    assert [w["reason"] for w in warnings] == ["ApplyFailed"]
    assert REFUSAL in warnings[0]["message"]
    assert any(w in warnings[0]["message"] for w in workers)
    assert elapsed < 15, f"the refusal took {elapsed:.1f} s to show"

    # Retried with a growing pause, and told once: the Event is not repeated while nothing changes.
    await operator.reconciler.events.flush()
    assert len(await _warnings(kube, namespace, "refused")) == 1

    await kube.delete(BINDINGS, no_workers_policy)
    ready = await wait_condition(kube, namespace, "refused", "Ready", timeout=90)
    assert ready["status"]["cluster_state"] == "running"
    assert set(ready["status"]["current_workers"]) == set(workers)
    await delete_cluster(kube, namespace, "refused")


async def test_a_name_of_another_owner_is_told_and_clears(kube: Kube, namespace: str, operator: Controller) -> None:
    squatter = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": ClusterSecret.CA.of("held"), "namespace": namespace},
        "stringData": {"note": "made by someone else"},
    }
    await kube.create(r.SECRETS, squatter, namespace)
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "held"), namespace)
    cluster = await wait_condition(kube, namespace, "held", "Ready", "False", reason="ApplyFailed", timeout=30)
    message = _ready_message(cluster)
    assert f"Secret {ClusterSecret.CA.of('held')}" in message
    assert "another owner" in message

    await kube.delete(r.SECRETS, ClusterSecret.CA.of("held"), namespace)
    await wait_condition(kube, namespace, "held", "Ready", timeout=90)
    await delete_cluster(kube, namespace, "held")
