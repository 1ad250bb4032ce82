"""What the simulator does to 'run' a VM: nothing but bookkeeping (fake), or a network namespace running what
the VM's cloud-init would run (for the operator's user-data, a real Ray node) and a real TCP load balancer in
front of services (ray)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from vmray_operator.local.cloudinit_schema import validate_user_data
from vmray_operator.local.lbproxy import LoadBalancer, Target
from vmray_operator.local.network import GUEST_API_PORTS, VmNetwork
from vmray_operator.local.raynode import RayNode
from vmray_operator.local.user_data import parse_user_data

log = logging.getLogger("vmray.hypervisor")

GuestInfoListener = Callable[[str], None]  # called with a VM's key when its guest set a guestinfo value


class Hypervisor(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def check_bootstrap(self, user_data: str | None) -> list[str]: ...
    async def power_on(self, key: str, vm_name: str, address: str, user_data: str | None) -> None: ...
    def is_on(self, key: str) -> bool: ...
    async def power_off(self, key: str, soft: bool = False) -> None: ...
    async def destroy(self, key: str) -> None: ...
    async def expose(self, key: str, address: str, ports: list[tuple[int, int]], target: Target) -> None: ...
    async def unexpose(self, key: str) -> None: ...
    def guest_info(self, key: str) -> dict[str, str]: ...
    def watch_guest_info(self, listener: GuestInfoListener) -> None: ...


class FakeHypervisor:
    """Only remembers which VMs are on: fast, for tests of the operator's bookkeeping."""

    def __init__(self) -> None:
        self._on: set[str] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._on.clear()

    def check_bootstrap(self, user_data: str | None) -> list[str]:
        return []

    async def power_on(self, key: str, vm_name: str, address: str, user_data: str | None) -> None:
        self._on.add(key)

    def is_on(self, key: str) -> bool:
        return key in self._on

    async def power_off(self, key: str, soft: bool = False) -> None:
        self._on.discard(key)

    async def destroy(self, key: str) -> None:
        self._on.discard(key)

    async def expose(self, key: str, address: str, ports: list[tuple[int, int]], target: Target) -> None:
        return None

    async def unexpose(self, key: str) -> None:
        return None

    def guest_info(self, key: str) -> dict[str, str]:
        return {}

    def watch_guest_info(self, listener: GuestInfoListener) -> None:
        return None


def instance_tag(state_dir: Path) -> str:
    """A short tag, unique per simulator state directory, in the names of its links and namespaces."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:4]


def remove_leftovers(state_dir: Path) -> list[str]:
    """Kills what runs in a (killed) ray-mode simulator's namespaces and deletes them and its bridge."""
    removed = VmNetwork(instance_tag(state_dir), "10.0.0.0/8").remove_everything_sync()
    return removed


class RayHypervisor:
    """Every powered-on VM is a network namespace running what its cloud-init would run."""

    # A soft power-off lasts as long as the guest's shutdown (systemd stops the Ray unit within its TimeoutStopSec),
    # at most this long; then the VM is stopped hard, as a TrySoft power-off falls back to a hard one.
    SOFT_POWER_OFF_LIMIT = 300.0

    def __init__(
        self,
        state_dir: Path,
        vm_network: str,
        drain_timeout: float = SOFT_POWER_OFF_LIMIT,
        api_server: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.network = VmNetwork(instance_tag(state_dir), vm_network)
        self.drain_timeout = drain_timeout
        self.api_server = api_server  # host:port of the API server; VMs reach it on their gateway
        self._api_forwarder: LoadBalancer | None = None
        self._nodes: dict[str, RayNode | None] = {}  # None: a VM without user-data, which runs nothing
        self._disks: dict[str, Path] = {}  # the disks of the VMs that booted, powered on or not
        self._balancers: dict[str, LoadBalancer] = {}
        self._guest_info_listener: GuestInfoListener | None = None

    async def start(self) -> None:
        await self.network.setup()
        if self.api_server:
            host, port = self.api_server.rsplit(":", 1)
            ports = [(guest_port, int(port)) for guest_port in GUEST_API_PORTS]
            self._api_forwarder = LoadBalancer(str(self.network.gateway), ports, lambda: host)
            await self._api_forwarder.start()

    async def stop(self) -> None:
        if self._api_forwarder is not None:
            await self._api_forwarder.stop()
        await asyncio.gather(*(self.destroy(key) for key in {*self._nodes, *self._disks}), return_exceptions=True)
        for key in list(self._balancers):
            await self.unexpose(key)
        await self.network.teardown()
        with contextlib.suppress(OSError):  # empty once every VM is off
            self._guest_tmp_root().rmdir()

    def _guest_tmp_root(self) -> Path:
        """Where the VMs' /tmp/ray directories live: short, because Ray puts unix sockets there."""
        return Path(tempfile.gettempdir()) / f"vr{self.network.instance}"

    def check_bootstrap(self, user_data: str | None) -> list[str]:
        return validate_user_data(user_data) if user_data is not None else []

    async def power_on(self, key: str, vm_name: str, address: str, user_data: str | None) -> None:
        netns = await self.network.attach(key, address)
        if not user_data:
            self._nodes[key] = None
            return
        home = self.state_dir / "vms" / key.replace("/", "_")
        tmp = self._guest_tmp_root() / netns.rsplit("-", 1)[-1]
        node = RayNode(vm_name, netns, address, parse_user_data(user_data), home, tmp, lambda: self._guest_set(key))
        self._nodes[key] = node
        self._disks[key] = home
        if node.booted_before:
            node.boot_again()
        else:
            node.start()

    def _guest_set(self, key: str) -> None:
        if self._guest_info_listener is not None:
            self._guest_info_listener(key)

    def guest_info(self, key: str) -> dict[str, str]:
        node = self._nodes.get(key)
        return node.guest_info() if node is not None else {}

    def watch_guest_info(self, listener: GuestInfoListener) -> None:
        self._guest_info_listener = listener

    def is_on(self, key: str) -> bool:
        return key in self._nodes

    async def power_off(self, key: str, soft: bool = False) -> None:
        """soft: the guest shuts down (Ray gets SIGTERM and drains, within drain_timeout); otherwise the
        VM stops at once. Its disk stays: powered on again, it boots from it."""
        if key not in self._nodes:
            return
        node = self._nodes.pop(key)
        netns = self.network.namespace_of(key)
        if node is not None and netns is not None:
            await node.stop(lambda: self.network.pids(netns), self.drain_timeout if soft else 0)
            node.clear_tmp()
        await self.network.detach(key)

    async def destroy(self, key: str) -> None:
        """The VM is deleted: off at once, and its disk gone."""
        await self.power_off(key)
        home = self._disks.pop(key, None)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)

    async def expose(self, key: str, address: str, ports: list[tuple[int, int]], target: Target) -> None:
        if key in self._balancers:
            return
        await self.network.add_address(address)
        balancer = LoadBalancer(address, ports, target)
        await balancer.start()
        self._balancers[key] = balancer

    async def unexpose(self, key: str) -> None:
        balancer = self._balancers.pop(key, None)
        if balancer is not None:
            await balancer.stop()
            await self.network.remove_address(balancer.address)
