"""The head autoscaler's identity on the real API server: its token works for its own cluster only, and
goes away with the cluster."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.clusters import as_token, cluster_token, delete_cluster, get_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Forbidden, Kube, Unauthorized
from vmray_operator.render import identity, names
from vmray_operator.render.autoscaler import config_map_name

pytestmark = pytest.mark.simulator


async def test_head_token_reaches_its_own_cluster_only(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "mine"), namespace)
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "theirs"), namespace)
    mine = await wait_condition(kube, namespace, "mine", "Ready")
    await wait_condition(kube, namespace, "theirs", "Ready")

    autoscaler = as_token(kube, await cluster_token(kube, namespace, "mine"))
    try:
        # What Ray's vSphere provider does: read its cluster and the head's service, patch the desired workers.
        assert (await autoscaler.get(r.VMRAYCLUSTERS, "mine", namespace) or {})["metadata"]["uid"] == mine["metadata"][
            "uid"
        ]
        head = names.head_vm_name("mine", mine["metadata"]["labels"][contract.HEAD_NOUNCE_LABEL])
        service = await autoscaler.get(r.VIRTUAL_MACHINE_SERVICES.at_version("v1alpha2"), head, namespace)
        assert service is not None
        await autoscaler.patch(
            r.VMRAYCLUSTERS,
            "mine",
            {"spec": {"autoscaler_desired_workers": {"mine-w-byauto00": "ray.worker.default"}}},
            namespace,
        )

        # Nothing else: another field of its cluster (the admission policy), another cluster, the cluster list,
        # Secrets, VMs.
        with pytest.raises(Forbidden, match=r"may change only spec\.autoscaler_desired_workers"):
            await autoscaler.patch(
                r.VMRAYCLUSTERS, "mine", {"spec": {"worker_node": {"setup_commands": ["id"]}}}, namespace
            )
        with pytest.raises(Forbidden):
            await autoscaler.get(r.VMRAYCLUSTERS, "theirs", namespace)
        with pytest.raises(Forbidden):
            await autoscaler.patch(r.VMRAYCLUSTERS, "theirs", {"spec": {"autoscaler_desired_workers": {}}}, namespace)
        with pytest.raises(Forbidden):
            await autoscaler.list(r.VMRAYCLUSTERS, namespace)
        with pytest.raises(Forbidden):
            await autoscaler.list(r.SECRETS, namespace)
        with pytest.raises(Forbidden):
            await autoscaler.delete(r.VMRAYCLUSTERS, "mine", namespace)
        with pytest.raises(Forbidden):
            await autoscaler.list(r.VIRTUAL_MACHINES, namespace)
    finally:
        autoscaler.close()

    async def three_workers() -> bool:
        cluster = await get_cluster(kube, namespace, "mine")
        return "mine-w-byauto00" in (cluster or {}).get("status", {}).get("current_workers", {})

    await wait_for(three_workers, what="the worker the token added")


async def test_token_dies_with_the_cluster(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "brief"), namespace)
    await wait_condition(kube, namespace, "brief", "Ready")
    token = await cluster_token(kube, namespace, "brief")
    await delete_cluster(kube, namespace, "brief")

    async def account_gone() -> bool:
        account = await kube.get(r.SERVICE_ACCOUNTS, identity.service_account_name("brief"), namespace)
        role = await kube.get(r.ROLES, identity.service_account_name("brief"), namespace)
        return account is None and role is None

    await wait_for(account_gone, timeout=60, what="the autoscaler's ServiceAccount and Role collected")
    autoscaler = as_token(kube, token)
    try:
        with pytest.raises(Unauthorized):
            await autoscaler.get(r.VMRAYCLUSTERS, "brief", namespace)
    finally:
        autoscaler.close()


async def test_changed_limits_reach_the_head_without_replacing_it(
    kube: Kube, namespace: str, operator: Controller, tmp_path: Path
) -> None:
    """The head's config sync (run here as the head runs it, with the head's token) follows the
    autoscaler's ConfigMap, which follows the spec; the head VM stays."""
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "limits"), namespace)
    cluster = await wait_condition(kube, namespace, "limits", "Ready")
    head = names.head_vm_name("limits", cluster["metadata"]["labels"][contract.HEAD_NOUNCE_LABEL])
    head_uid = (await kube.get(r.VIRTUAL_MACHINES, head, namespace) or {})["metadata"]["uid"]
    initial, target = tmp_path / "initial.yaml", tmp_path / "live" / "autoscaler.yaml"
    initial.write_text("max_workers: 0\n")
    configuration = kube.configuration
    sync = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vmray_operator.guest.node_agent",
        "sync-autoscaler-config",
        f"--initial={initial}",
        f"--target={target}",
        f"--api-server={configuration.host.removeprefix('https://')}",
        f"--ca-cert={configuration.ssl_ca_cert}",
        f"--namespace={namespace}",
        f"--config-map={config_map_name('limits')}",
        "--interval=0.2",
        env={"SVC_ACCOUNT_TOKEN": await cluster_token(kube, namespace, "limits"), "PATH": os.environ["PATH"]},
    )
    try:

        async def live_config(max_workers: int) -> bool:
            # the agent writes the initial config (which has no node types) before the ConfigMap's
            config = yaml.safe_load(target.read_text()) if target.exists() else {}
            worker = config.get("available_node_types", {}).get("ray.worker.default", {})
            return bool(worker.get("max_workers") == max_workers)

        await wait_for(lambda: live_config(5), what="the head's config written from the ConfigMap")
        await kube.patch(
            r.VMRAYCLUSTERS,
            "limits",
            {"spec": {"common_node_config": {"available_node_types": {"ray.worker.default": {"max_workers": 3}}}}},
            namespace,
        )
        await wait_for(lambda: live_config(3), what="the changed limit on the head")
    finally:
        sync.terminate()
        await sync.wait()
    assert (await kube.get(r.VIRTUAL_MACHINES, head, namespace) or {})["metadata"]["uid"] == head_uid
