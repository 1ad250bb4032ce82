"""Fixtures shared by every test: a real control plane, namespaces, the simulator, the operator.

Against an existing cluster: set VMRAY_TEST_KUBECONFIG; tests marked `simulator` are then skipped
(they need the local VM Operator simulator), everything else runs as is."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from vmray_operator.config import Settings
from vmray_operator.controller.runtime import Controller
from vmray_operator.handlers import build_registry
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.kube.discovery import vmop_version
from vmray_operator.local import cloud, controlplane, processes, samples, vmop_crds

EXTERNAL_KUBECONFIG = os.environ.get("VMRAY_TEST_KUBECONFIG")


FIGURES: list[str] = []  # measured along the way, printed in the summary
# The VM Operator version the local control plane stores, and so the one its simulator and operator speak (without
# VM Operator's conversion webhook only the storage version's objects are whole): the newest, or the one asked for.
VMOP_STORAGE = os.environ.get("VMRAY_TEST_VMOP_VERSION") or vmop_crds.SUPPORTED_VERSIONS[-1]
# vSphere's steps, shortened: every simulator a test session starts uses these
SHORT_VM_DELAYS = ("--create-delay", "0.05", "--power-delay", "0.05", "--ip-delay", "0.1")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for figure in FIGURES:
        terminalreporter.write_line(f"[figure] {figure}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not EXTERNAL_KUBECONFIG:
        return
    skip = pytest.mark.skip(reason="needs the local VM Operator simulator (VMRAY_TEST_KUBECONFIG is set)")
    for item in items:
        if "simulator" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real API server: the local control plane (started here), or VMRAY_TEST_KUBECONFIG's."""
    yield from control_plane(tmp_path_factory)


def control_plane(tmp_path_factory: pytest.TempPathFactory, extra_ips: tuple[str, ...] = ()) -> Iterator[Path]:
    if EXTERNAL_KUBECONFIG:
        yield Path(EXTERNAL_KUBECONFIG)
        return
    state_dir = tmp_path_factory.mktemp("control-plane")
    started = time.monotonic()
    try:
        controlplane.up(state_dir, extra_ips=extra_ips)
        asyncio.run(_install(controlplane.kubeconfig_path(state_dir)))
    except Exception as error:  # the run must fail with the reason, never skip
        controlplane.down(state_dir)
        pytest.fail(f"the local control plane could not start: {error}", pytrace=False)
    FIGURES.append(f"control plane ready with CRDs in {time.monotonic() - started:.1f} s")
    yield controlplane.kubeconfig_path(state_dir)
    controlplane.down(state_dir)


async def _install(kubeconfig: Path) -> None:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    try:
        await cloud.install_crds(kube, vmop_crds.SUPPORTED_VERSIONS, VMOP_STORAGE)
        await samples.seed_cluster(kube, VMOP_STORAGE)
    finally:
        kube.close()


@pytest.fixture(scope="session")
async def kube(kubeconfig: Path) -> AsyncIterator[Kube]:
    client = Kube.from_kubeconfig(str(kubeconfig))
    yield client
    client.close()


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace with the VM classes and image a VI admin would attach."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    await samples.seed_namespace(kube, name)
    yield name
    await kube.delete(r.NAMESPACES, name)


@pytest.fixture(scope="session")
def simulator(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The VM Operator simulator as its own process, with short delays."""
    state_dir = tmp_path_factory.mktemp("simulator")
    cloud.start_simulator_process(
        state_dir,
        kubeconfig,
        "--vmop-version",
        VMOP_STORAGE,
        *SHORT_VM_DELAYS,
        "--delete-delay",
        "0.05",
        "--lb-delay",
        "0.05",
    )
    yield state_dir
    log = state_dir / "logs" / "simulator.log"
    processes.stop(state_dir, "simulator")
    errors = [line for line in log.read_text().splitlines() if "Traceback" in line]
    assert not errors, f"the simulator logged errors; see {log}"


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmray_operator.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
async def operator(kubeconfig: Path, simulator: Path) -> AsyncIterator[Controller]:
    """The operator, in-process against the control plane, with short recheck intervals."""
    # The fake simulator runs no Ray: readiness stops at the VM level.
    settings = Settings(
        dependency_recheck=0.5,
        deletion_timeout=30.0,
        api_server_location="127.0.0.1:6443",
        probe_ray=False,
        # empty: discovered (the newest served, the stored one here); test_cluster_lifecycle.py runs every version
        vmop_api_version=os.environ.get("VMRAY_TEST_VMOP_VERSION") or None,
    )
    async with running_operator(kubeconfig, settings) as controller:
        yield controller


@contextlib.asynccontextmanager
async def running_operator(kubeconfig: Path, settings: Settings) -> AsyncIterator[Controller]:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    stop, ready = asyncio.Event(), asyncio.Event()
    controllers: list[Controller] = []

    async def run() -> None:
        version = await vmop_version(kube, settings.vmop_api_version)
        controller = Controller(kube, settings, version)
        controllers.append(controller)
        await kopf.operator(
            registry=build_registry(controller), standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready
        )

    task = asyncio.create_task(run())
    ready_wait = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, ready_wait}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the operator's start-up error
    if not done:
        raise TimeoutError("the operator did not become ready within 30 s")
    try:
        yield controllers[0]
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=30)  # a stop that hangs is cancelled, not a test error
        kube.close()
