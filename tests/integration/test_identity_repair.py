"""The cluster's identity is kept as it should be: a deleted Role or an edited RoleBinding is put back, and the
autoscaler's next request succeeds."""

from __future__ import annotations

import pytest

from tests.support.clusters import as_token, cluster_token, delete_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Forbidden, Kube
from vmray_operator.render import identity

pytestmark = pytest.mark.simulator


async def test_a_deleted_role_and_an_edited_binding_are_put_back(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "kept"), namespace)
    await wait_condition(kube, namespace, "kept", "Ready")
    autoscaler = as_token(kube, await cluster_token(kube, namespace, "kept"))
    name = identity.service_account_name("kept")
    try:
        assert await autoscaler.get(r.VMRAYCLUSTERS, "kept", namespace) is not None
        role = await kube.get(r.ROLES, name, namespace)
        assert role is not None

        await kube.delete(r.ROLES, name, namespace)

        async def reads_its_cluster() -> bool:
            try:
                return await autoscaler.get(r.VMRAYCLUSTERS, "kept", namespace) is not None
            except Forbidden:
                return False

        await wait_for(reads_its_cluster, timeout=20, what="the autoscaler's token reading its cluster again")
        again = await kube.get(r.ROLES, name, namespace)
        assert again is not None
        assert again["metadata"]["uid"] != role["metadata"]["uid"]
        assert again["rules"] == role["rules"]

        await kube.patch(r.ROLES, name, {"rules": []}, namespace)
        await wait_for(reads_its_cluster, timeout=20, what="the Role's rules put back")

        # A binding pointed at another Role is made again (roleRef cannot change in place).
        binding = await kube.get(r.ROLE_BINDINGS, name, namespace)
        assert binding is not None
        await kube.delete(r.ROLE_BINDINGS, name, namespace)
        meta = binding["metadata"]
        wrong = {
            **binding,
            "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences")},
            "roleRef": {**binding["roleRef"], "name": "nothing-at-all"},
        }
        await kube.create(r.ROLE_BINDINGS, wrong, namespace)

        async def bound_again() -> bool:
            current = await kube.get(r.ROLE_BINDINGS, name, namespace)
            return current is not None and current["roleRef"]["name"] == name

        await wait_for(bound_again, timeout=20, what="the RoleBinding made again")
        await wait_for(reads_its_cluster, timeout=20, what="the autoscaler's token reading its cluster again")
    finally:
        autoscaler.close()
    await delete_cluster(kube, namespace, "kept")
