"""End-to-end fixtures: the simulator in ray mode (every VM a namespace with a real Ray node) and the
operator probing Ray. Run apart from tests/integration, whose simulator is the fake one."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIGURES, SHORT_VM_DELAYS, control_plane, running_operator
from tests.support.memory import PeakMemory
from vmray_operator.config import Settings
from vmray_operator.controller.runtime import Controller
from vmray_operator.local import cloud, processes
from vmray_operator.local.hypervisor import remove_leftovers
from vmray_operator.local.network import free_network, gateway_of, guest_api_address

# The first VM network no route of this host covers (each with the next /16 for load balancers), so that a run
# beside another local cloud, or beside the leftovers of a killed one, still has a network of its own.
VM_NETWORK = free_network([f"10.{second}.0.0/16" for second in (213, 217, 219, 221)])
LB_NETWORK = f"10.{int(VM_NETWORK.split('.')[1]) + 1}.0.0/16"
# Where the nodes reach the API server, written as the seed tells users to: the IP alone (port 443).
GUEST_API = guest_api_address(VM_NETWORK)


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The control plane, its serving certificate valid where the VMs reach it too."""
    yield from control_plane(tmp_path_factory, extra_ips=(gateway_of(VM_NETWORK),))


@pytest.fixture(scope="session", autouse=True)
def peak_memory() -> Iterator[PeakMemory]:
    sampler = PeakMemory()
    sampler.start()
    yield sampler
    pss, rss = sampler.stop()
    FIGURES.append(
        f"peak memory of everything the e2e suite started: {pss / 2**30:.2f} GiB "
        f"(PSS; the plain sum of RSS, shared pages counted once per process: {rss / 2**30:.2f} GiB)"
    )


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
        *SHORT_VM_DELAYS,
        "--drain-timeout",
        "30",
        "--api-server",
        api_server_of(kubeconfig),
    )
    yield sim_dir
    processes.stop(state_dir, "simulator", timeout=60)
    leftovers = remove_leftovers(sim_dir)
    assert not leftovers, f"the simulator left namespaces or links behind: {leftovers}"


@pytest.fixture(scope="session")
async def operator(kubeconfig: Path, simulator: Path) -> AsyncIterator[Controller]:
    settings = Settings(
        dependency_recheck=0.5,
        deletion_timeout=120.0,
        api_server_location=GUEST_API,
        api_server_ca_cert=ca_of(kubeconfig),
    )
    async with running_operator(kubeconfig, settings) as controller:
        yield controller


def api_server_of(kubeconfig: Path) -> str:
    server: str = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    return server.removeprefix("https://")


def ca_of(kubeconfig: Path) -> str:
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    return base64.b64decode(cluster["certificate-authority-data"]).decode()
