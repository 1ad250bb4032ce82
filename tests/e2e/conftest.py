"""End-to-end fixtures: the simulator in ray mode (every VM a namespace with a real Ray node) and the
operator probing Ray. Run apart from tests/integration, whose simulator is the fake one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import FIGURES, running_operator
from tests.support.memory import PeakMemory
from vmray_operator.config import Settings
from vmray_operator.controller.runtime import Controller
from vmray_operator.local import cloud, processes
from vmray_operator.local.hypervisor import remove_leftovers

VM_NETWORK, LB_NETWORK = "10.213.0.0/16", "10.214.0.0/16"


@pytest.fixture(scope="session", autouse=True)
def peak_memory() -> Iterator[PeakMemory]:
    sampler = PeakMemory()
    sampler.start()
    yield sampler
    peak = sampler.stop()
    FIGURES.append(f"peak memory of everything the e2e suite started: {peak / 2**30:.2f} GiB")


@pytest.fixture(scope="session")
def simulator(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("ray-simulator")
    sim_dir = state_dir / "simulator"
    cloud.start_simulator_process(
        state_dir,
        kubeconfig,
        "--mode",
        "ray",
        "--state-dir",
        str(sim_dir),
        "--vm-network",
        VM_NETWORK,
        "--lb-network",
        LB_NETWORK,
        "--create-delay",
        "0.05",
        "--power-delay",
        "0.05",
        "--ip-delay",
        "0.1",
        "--drain-timeout",
        "30",
    )
    yield sim_dir
    processes.stop(state_dir, "simulator", timeout=60)
    leftovers = remove_leftovers(sim_dir)
    assert not leftovers, f"the simulator left namespaces or links behind: {leftovers}"


@pytest.fixture(scope="session")
async def operator(kubeconfig: Path, simulator: Path) -> AsyncIterator[Controller]:
    settings = Settings(dependency_recheck=0.5, deletion_timeout=120.0, api_server_location="127.0.0.1:6443")
    async with running_operator(kubeconfig, settings) as controller:
        yield controller
