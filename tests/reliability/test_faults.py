"""Faults around a running operator: the API server restarted, etcd frozen, VMs deleted behind its back,
a VM that never gets an address, a slow deletion. The operator process lives through all of them (never
exits, so never crash-loops), says in the cluster's conditions what it waits for, and recovers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIGURES
from tests.reliability.conftest import WORKER, OperatorProcess, small_cluster
from tests.support.clusters import cluster_vms, get_cluster, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import processes
from vmray_operator.render import names

pytestmark = pytest.mark.simulator


def _argv(state_dir: Path, name: str) -> list[str]:
    """The command line a recorded process was started with."""
    pid = processes.recorded(state_dir)[name]
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


@contextlib.asynccontextmanager
async def replaced(
    state_dir: Path, name: str, argv: Sequence[str] | None = None, run_dir: Path | None = None
) -> AsyncIterator[None]:
    """Stops a recorded process (SIGTERM) and starts argv (default: its own command line) in its place, recorded
    (and logging) in run_dir (default: state_dir); afterwards the original command line runs again."""
    original = _argv(state_dir, name)
    processes.stop(state_dir, name)
    processes.start(run_dir or state_dir, name, argv or original)
    try:
        yield
    finally:
        processes.stop(run_dir or state_dir, name)
        processes.start(state_dir, name, original)


def _with_flags(argv: list[str], **flags: str) -> list[str]:
    """argv with --flag values replaced (flag names with '_' for '-')."""
    result = list(argv)
    for flag, value in flags.items():
        option = f"--{flag.replace('_', '-')}"
        if option in result:
            result[result.index(option) + 1] = value
        else:
            result += [option, value]
    return result


async def _api_answers(kube: Kube, namespace: str) -> bool:
    try:  # VMRayClusters: the API server has installed the paths of custom resources too
        await kube.list(r.VMRAYCLUSTERS, namespace)
    except Exception:  # connection refused or reset while the server is away
        return False
    return True


async def _condition(kube: Kube, namespace: str, name: str, type_: str) -> dict[str, Any]:
    cluster = await get_cluster(kube, namespace, name)
    return find(((cluster or {}).get("status") or {}).get("conditions"), type_) or {}


async def test_vms_deleted_behind_the_operators_back_are_made_again(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    await operator_process.start_and_wait()
    pid = operator_process.pid
    await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, "bereft", min_workers=2), namespace)
    await wait_condition(kube, namespace, "bereft", "Ready")
    before = {n: vm["metadata"]["uid"] for n, vm in (await cluster_vms(kube, namespace, "bereft")).items()}
    for vm_name in before:  # the head and every worker
        await kube.delete(r.VIRTUAL_MACHINES, vm_name, namespace)

    async def all_made_again() -> bool:
        vms = await cluster_vms(kube, namespace, "bereft")
        fresh = set(vms) == set(before) and all(vm["metadata"]["uid"] != before[n] for n, vm in vms.items())
        return fresh and (await _condition(kube, namespace, "bereft", "Ready")).get("status") == "True"

    await wait_for(all_made_again, timeout=60, what="the deleted VMs made again under their names, and Ready")
    assert operator_process.pid == pid, "the operator restarted"


async def test_a_vm_without_an_address_is_reported_and_recovers(
    kube: Kube, namespace: str, operator_process: OperatorProcess, simulator: Path
) -> None:
    await operator_process.start_and_wait()
    slow = _with_flags(_argv(simulator, "simulator"), ip_delay="3600")
    async with replaced(simulator, "simulator", slow):
        await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, "no-address"), namespace)
        cluster = await wait_condition(kube, namespace, "no-address", "Ready", "False", "WaitingForNetworkAddress")
        head = names.head_vm_name("no-address", cluster["metadata"]["labels"][contract.HEAD_NOUNCE_LABEL])
        ready = find(cluster["status"]["conditions"], "Ready") or {}
        assert head in ready["message"], ready
        await asyncio.sleep(3)  # it stays so, without the operator failing
        workers = await _condition(kube, namespace, "no-address", "WorkersReady")
        assert workers["status"] == "False"
        assert "WaitingForNetworkAddress" in workers["message"], workers
        status = (await get_cluster(kube, namespace, "no-address") or {})["status"]
        assert status["cluster_state"] == "provisioning"
        assert status["head_node_status"]["vm_status"] == "initialized"

    # The usual simulator again: a restarted simulator boots the VMs' guests again and hands out the
    # addresses it had not (no event comes for them: their status does not change), and Ready follows.
    async def cluster_ready() -> bool:
        return (await _condition(kube, namespace, "no-address", "Ready")).get("status") == "True"

    await wait_for(cluster_ready, timeout=60, interval=1.0, what="no-address Ready once addresses come")
    assert operator_process.alive
    assert not operator_process.tracebacks()


async def test_a_slow_deletion_is_reported_until_it_is_done(
    kube: Kube, namespace: str, operator_process: OperatorProcess, simulator: Path
) -> None:
    operator_process.env["VMRAY_DELETION_TIMEOUT"] = "2"
    await operator_process.start_and_wait()
    await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, "lingering"), namespace)
    await wait_condition(kube, namespace, "lingering", "Ready")
    slow = _with_flags(_argv(simulator, "simulator"), delete_delay="8")
    async with replaced(simulator, "simulator", slow):
        started = time.monotonic()
        await kube.delete(r.VMRAYCLUSTERS, "lingering", namespace)
        cluster = await wait_condition(kube, namespace, "lingering", "Ready", "False", "DeletionStuck", timeout=30)
        message = (find(cluster["status"]["conditions"], "Ready") or {})["message"]
        assert cluster["status"]["cluster_state"] == "deleting"
        assert all(vm in message for vm in await cluster_vms(kube, namespace, "lingering")), message

        async def gone() -> bool:
            return await get_cluster(kube, namespace, "lingering") is None

        await wait_for(gone, timeout=60, what="the slowly deleted cluster gone")
        FIGURES.append(f"faults: a deletion slowed to 8 s per VM done in {time.monotonic() - started:.1f} s")
    assert await cluster_vms(kube, namespace, "lingering") == {}
    assert operator_process.alive
    assert not operator_process.tracebacks()


async def test_the_api_server_restarted_mid_run(
    kube: Kube, kubeconfig: Path, namespace: str, operator_process: OperatorProcess, simulator: Path, tmp_path: Path
) -> None:
    await operator_process.start_and_wait()
    pid = operator_process.pid
    control_plane = kubeconfig.parent
    argv = _argv(control_plane, "kube-apiserver")
    # A simulator of its own, whose log may show the outage (the session's must stay free of tracebacks).
    async with replaced(simulator, "simulator", run_dir=tmp_path / "simulator"):
        await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, "outage"), namespace)
        await wait_condition(kube, namespace, "outage", "Ready")
        # A worker asked for just before the API server goes away, and one asked for after it is back.
        await _add_worker(kube, namespace, "outage-w-beforers")
        processes.stop(control_plane, "kube-apiserver")
        await asyncio.sleep(3)
        processes.start(control_plane, "kube-apiserver", argv)
        await wait_for(functools.partial(_api_answers, kube, namespace), timeout=60, what="the API server back")
        await _add_worker(kube, namespace, "outage-w-afterrst")

        async def scaled() -> bool:
            return {"outage-w-beforers", "outage-w-afterrst"} <= set(await cluster_vms(kube, namespace, "outage"))

        await wait_for(scaled, timeout=90, what="the workers asked for around the restart made")
        await wait_condition(kube, namespace, "outage", "Ready", timeout=60)
        await _no_more_failures(operator_process)
    assert operator_process.pid == pid, "the operator exited during the outage"


async def _no_more_failures(operator_process: OperatorProcess, quiet: float = 3.0) -> None:
    """Once recovered, the operator's reconciles stop failing (failures during a fault are retried, logged)."""
    before = len(operator_process.tracebacks())
    await asyncio.sleep(quiet)
    after = operator_process.tracebacks()
    assert len(after) == before, f"reconciles still fail after recovery:\n{after[-1]}"


async def _add_worker(kube: Kube, namespace: str, name: str) -> None:
    cluster = name.split("-w-")[0]
    await kube.patch(r.VMRAYCLUSTERS, cluster, {"spec": {"autoscaler_desired_workers": {name: WORKER}}}, namespace)


async def test_etcd_frozen_mid_run(
    kube: Kube, kubeconfig: Path, namespace: str, operator_process: OperatorProcess, simulator: Path, tmp_path: Path
) -> None:
    await operator_process.start_and_wait()
    pid = operator_process.pid
    etcd = processes.recorded(kubeconfig.parent)["etcd"]
    async with replaced(simulator, "simulator", run_dir=tmp_path / "simulator"):
        await kube.create(r.VMRAYCLUSTERS, small_cluster(namespace, "frozen", min_workers=2), namespace)
        os.kill(etcd, signal.SIGSTOP)  # while the operator makes the cluster's objects
        try:
            await asyncio.sleep(8)
        finally:
            os.kill(etcd, signal.SIGCONT)
        await wait_condition(kube, namespace, "frozen", "Ready", timeout=90)
        await _no_more_failures(operator_process)
    vms = await cluster_vms(kube, namespace, "frozen")
    cluster = await get_cluster(kube, namespace, "frozen")
    assert cluster is not None
    wanted = {names.head_vm_name("frozen", cluster["metadata"]["labels"][contract.HEAD_NOUNCE_LABEL])}
    assert set(vms) == wanted | set(cluster["spec"]["autoscaler_desired_workers"])
    assert operator_process.pid == pid, "the operator exited while etcd was frozen"
