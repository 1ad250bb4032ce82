"""The local cloud as a whole: control plane up, CRDs installed and established with the admission policies
(the VMRayCluster's and VM Operator's), sample vSphere objects seeded, and optionally the VM Operator simulator
running beside it."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vmray_operator.api.contract import Body
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Conflict, Invalid, Kube
from vmray_operator.local import controlplane, processes, samples, vmop_admission, vmop_crds
from vmray_operator.local.hypervisor import remove_leftovers
from vmray_operator.local.network import gateway_of, guest_api_address
from vmray_operator.local.simulator import SimulatorConfig

DEMO_NAMESPACE = "deploy-ray"


@dataclass(frozen=True)
class LocalCloud:
    state_dir: Path
    endpoints: controlplane.Endpoints

    @property
    def kubeconfig(self) -> Path:
        return controlplane.kubeconfig_path(self.state_dir)

    def operator_env(self) -> dict[str, str]:
        """How an operator of this cloud tells the heads' autoscalers where the API server is."""
        return {
            "VMRAY_API_SERVER_LOCATION": guest_api_address(SimulatorConfig.vm_network),
            "VMRAY_API_SERVER_CA_CERT": controlplane.ca_cert_path(self.state_dir).read_text(),
        }


def project_crds() -> list[Body]:
    """The project's own CRDs, generated from the API models."""
    from vmray_operator.api.crd import vmraycluster_crd

    return [vmraycluster_crd()]


async def _create_or_apply(kube: Kube, resource: r.Resource, body: Body) -> None:
    try:
        await kube.create(resource, body)
    except Conflict:
        await kube.apply(resource, body, field_manager="vmray-local")


async def install_crds(
    kube: Kube, vmop_versions: tuple[str, ...], vmop_storage: str | None = None, timeout: float = 30.0
) -> None:
    """The CRDs, established (VM Operator's serving vmop_versions, vmop_storage stored, by default the newest),
    the admission policy that comes with the VMRayCluster CRD (as the package installs it) and VM Operator's
    admission rules, all in force, so that everything run against the local cloud runs under them."""
    crds = [*vmop_crds.crds(vmop_versions, vmop_storage), *project_crds()]
    for crd in crds:
        await _create_or_apply(kube, r.CRDS, crd)
    deadline = time.monotonic() + timeout
    for crd in crds:
        while True:
            current = await kube.get(r.CRDS, crd["metadata"]["name"])
            conditions = ((current or {}).get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {crd['metadata']['name']} not established after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    await install_admission_policy(kube)
    await install_vmop_admission(kube, vmop_versions[0], timeout)


async def install_vmop_admission(kube: Kube, probe_version: str, timeout: float = 30.0) -> None:
    """VM Operator's admission rules (local/vmop_admission.py), waiting until the API server enforces them."""
    for policy in vmop_admission.POLICIES:
        await _create_or_apply(kube, r.ADMISSION_POLICIES, policy.body())
        await _create_or_apply(kube, r.ADMISSION_POLICY_BINDINGS, policy.binding())
    vms = r.VIRTUAL_MACHINES.at_version(probe_version)
    classless = {"apiVersion": vms.api_version, "kind": "VirtualMachine", "metadata": {"name": "probe"}, "spec": {}}
    deadline = time.monotonic() + timeout
    while True:  # a dry run of a VM without a class: refused once the rules are loaded
        try:
            await kube.request("POST", vms.path("default"), {"dryRun": "All"}, body=classless)
        except Invalid:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"VM Operator's admission rules not in force after {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def install_admission_policy(kube: Kube) -> None:
    """What a cluster's own token may change (api/admission.py)."""
    from vmray_operator.api.admission import binding, policy

    await _create_or_apply(kube, r.ADMISSION_POLICIES, policy())
    await _create_or_apply(kube, r.ADMISSION_POLICY_BINDINGS, binding())


async def _prepare(kubeconfig: Path, vmop_versions: tuple[str, ...], vmop_storage: str) -> None:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    try:
        await install_crds(kube, vmop_versions, vmop_storage)
        await samples.seed_cluster(kube, vmop_storage)
        await samples.seed_namespace(kube, DEMO_NAMESPACE, vmop_storage)
    finally:
        kube.close()


def up(
    state_dir: Path,
    vmop_versions: tuple[str, ...] = vmop_crds.SUPPORTED_VERSIONS,
    simulator: str | None = "fake",
    simulator_args: list[str] | None = None,
    vmop_storage: str | None = None,
) -> LocalCloud:
    """vmop_storage: the VM Operator version stored and spoken by the simulator (by default the newest served)."""
    storage = vmop_storage or vmop_versions[-1]
    # In ray mode the VMs reach the API server on their gateway (as VMs reach a Supervisor's API).
    extra_ips = (gateway_of(SimulatorConfig.vm_network),) if simulator == "ray" else ()
    endpoints = controlplane.up(state_dir, extra_ips=extra_ips)
    cloud = LocalCloud(state_dir, endpoints)
    try:
        asyncio.run(_prepare(cloud.kubeconfig, vmop_versions, storage))
        if simulator:
            extra = list(simulator_args or [])
            if simulator == "ray":
                extra += ["--api-server", endpoints.server.removeprefix("https://")]
            start_simulator(cloud, simulator, storage, extra)
    except BaseException:
        controlplane.down(state_dir)
        raise
    return cloud


def cli_argv(*args: str) -> list[str]:
    """The project's own CLI, run by this interpreter."""
    return [sys.executable, "-m", "vmray_operator.cli", *args]


def start_simulator_process(state_dir: Path, kubeconfig: Path, *args: str) -> None:
    """The VM Operator simulator as a recorded background process of state_dir."""
    processes.start(state_dir, "simulator", cli_argv("simulator", "--kubeconfig", str(kubeconfig), *args))


def start_operator(
    state_dir: Path, kubeconfig: Path, *args: str, metrics_port: int = 0, env: dict[str, str] | None = None
) -> None:
    """The operator as a recorded background process of state_dir (no liveness endpoint)."""
    argv = cli_argv(
        *args,
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--liveness",
        "",
        "--metrics-port",
        str(metrics_port),
        "--metrics-address",
        "127.0.0.1",  # a local cloud serves nothing beyond loopback
    )
    processes.start(state_dir, "operator", argv, env=env)


def start_simulator(cloud: LocalCloud, mode: str, vmop_version: str, extra: list[str] | None = None) -> None:
    state = str(simulator_dir(cloud.state_dir))
    args = ["--mode", mode, "--vmop-version", vmop_version, "--state-dir", state, *(extra or [])]
    start_simulator_process(cloud.state_dir, cloud.kubeconfig, *args)


def simulator_dir(state_dir: Path) -> Path:
    return state_dir / "simulator"


def down(state_dir: Path) -> list[str]:
    """Stops everything; returns the names of leftover namespaces and links it had to remove."""
    controlplane.down(state_dir)
    return remove_leftovers(simulator_dir(state_dir))
