"""Create and delete one small cluster over and over, under the same name: sometimes deleted once Ready,
sometimes while it is still being made. Nothing may be left behind, and no incarnation may adopt or lose
objects of an earlier one.

CI runs 50 cycles; VMRAY_RELIABILITY_LONG=1 runs 300 (VMRAY_RELIABILITY_CYCLES sets any number)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import pytest

from tests.conftest import FIGURES
from tests.reliability.conftest import (
    DELETED_BY_THE_OPERATOR,
    LABELLED,
    OperatorProcess,
    leftovers,
    seeded_random,
    settled,
    sized,
    small_cluster,
)
from tests.support.clusters import get_cluster, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube, NotFound
from vmray_operator.render.identity import service_account_name
from vmray_operator.render.names import ClusterSecret

pytestmark = pytest.mark.simulator

IDENTITY = LABELLED[3:]  # ServiceAccount, Role, RoleBinding, ConfigMap: they go with the garbage collector
CYCLES = sized("CYCLES", 50, 300)
NAME = "cycle"


async def _not_its_own(
    kube: Kube, namespace: str, uid: str, kinds: tuple[tuple[str, r.Resource], ...] = LABELLED
) -> list[str]:
    """Labelled objects of the cluster whose owner is not the cluster's current incarnation, and kinds of
    which it has no object of its own (a Ready cluster has VMs, a service, Secrets and its autoscaler's
    ServiceAccount, Role, RoleBinding and ConfigMap)."""
    problems: list[str] = []
    for kind, resource in kinds:
        own = 0
        for item in await kube.list(resource, namespace, f"{contract.LABEL_CLUSTER}={NAME}"):
            owners = [o.get("uid") for o in item["metadata"].get("ownerReferences") or []]
            if owners == [uid]:
                own += 1
            else:
                problems.append(f"{kind}/{item['metadata']['name']} owned by {owners}")
        if not own:
            problems.append(f"no {kind} of its own")
    return problems


async def _gone(kube: Kube, namespace: str) -> bool:
    return await get_cluster(kube, namespace, NAME) is None


@pytest.mark.timeout(max(300, 6 * CYCLES + 120))
async def test_create_delete_cycles_leave_nothing_behind(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    rng = seeded_random("create/delete cycles")
    await operator_process.start_and_wait()
    started = time.monotonic()
    early = 0
    for cycle in range(CYCLES):
        created = await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, NAME, min_workers=1), namespace)
        if rng.random() < 0.5:
            early += 1
            await asyncio.sleep(rng.uniform(0.0, 1.0))  # deleted while its VMs are being made
        else:
            ready = await wait_condition(kube, namespace, NAME, "Ready")
            assert ready["metadata"]["uid"] == created["metadata"]["uid"]
            # The VMs, service and Secrets of a Ready incarnation are its own: nothing of an earlier one was
            # adopted. (Its autoscaler identity: see the test below.)
            uid = created["metadata"]["uid"]
            mine = functools.partial(_not_its_own, kube, namespace, uid, DELETED_BY_THE_OPERATOR)
            problems = await settled(mine, timeout=10)
            assert not problems, f"cycle {cycle}, a Ready incarnation: {problems}"
        await kube.delete(r.VMRAYCLUSTERS, NAME, namespace)

        await wait_for(functools.partial(_gone, kube, namespace), timeout=60, what=f"cycle {cycle}: cluster deleted")
    elapsed = time.monotonic() - started

    # Objects that only have an owner reference go with Kubernetes' garbage collector: poll.
    async def nothing_left() -> bool:
        return not await leftovers(kube, namespace, NAME)

    with_gc = time.monotonic()
    await wait_for(nothing_left, timeout=60, interval=0.5, what="every labelled object gone")
    assert await kube.list(r.VIRTUAL_MACHINES, namespace) == []
    assert await kube.list(r.VIRTUAL_MACHINE_SERVICES, namespace) == []
    assert operator_process.alive
    FIGURES.append(
        f"create/delete cycles: {CYCLES} ({early} deleted while provisioning) in {elapsed:.0f} s, "
        f"{elapsed / CYCLES:.2f} s each; garbage collection done {time.monotonic() - with_gc:.1f} s later"
    )


HOLD = "reliability.test/hold"  # a finalizer that keeps an object the way a slow garbage collector does
GC_LAG = 5.0  # seconds the predecessor's identity outlives it


async def test_a_cluster_made_again_under_its_name_gets_its_own_autoscaler_identity(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    """Deleted and made again at once (a user re-applying a manifest): the predecessor's ServiceAccount,
    Role, RoleBinding and autoscaler ConfigMap wait for Kubernetes' garbage collector, which takes its time
    (37 s measured on a fresh control plane). A finalizer holds them for GC_LAG seconds, so that the race is
    the same in every run. Once the new cluster says Ready, its autoscaler identity, config and token must be
    its own, not the predecessor's that the collector is about to take away."""
    await operator_process.start_and_wait()
    await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, NAME), namespace)
    await wait_condition(kube, namespace, NAME, "Ready")
    held: list[tuple[r.Resource, str]] = []
    for _, resource in IDENTITY:
        for item in await kube.list(resource, namespace, f"{contract.LABEL_CLUSTER}={NAME}"):
            await kube.patch(resource, item["metadata"]["name"], {"metadata": {"finalizers": [HOLD]}}, namespace)
            held.append((resource, item["metadata"]["name"]))
    assert len(held) == len(IDENTITY)

    async def release(after: float) -> None:
        await asyncio.sleep(after)
        for resource, name in held:
            with contextlib.suppress(NotFound):
                await kube.patch(resource, name, {"metadata": {"finalizers": None}}, namespace)

    await kube.delete(r.VMRAYCLUSTERS, NAME, namespace)
    await wait_for(functools.partial(_gone, kube, namespace), timeout=60, what="the first cluster deleted")
    again = await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, NAME), namespace)
    releasing = asyncio.create_task(release(GC_LAG))
    try:
        await wait_condition(kube, namespace, NAME, "Ready")
        problems = await _not_its_own(kube, namespace, again["metadata"]["uid"])
        account = await kube.get(r.SERVICE_ACCOUNTS, service_account_name(NAME), namespace)
        token = await kube.get(r.SECRETS, ClusterSecret.SA_TOKEN.of(NAME), namespace)
    finally:
        await releasing
    assert not problems, f"when the second cluster is Ready: {problems}"
    assert account is not None
    assert token is not None
    token_for = (token["metadata"].get("annotations") or {}).get("kubernetes.io/service-account.uid")
    assert token_for == account["metadata"]["uid"], "the head's token is not its ServiceAccount's"
