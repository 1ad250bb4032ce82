"""Each simulated VM gets a network namespace with its own address on a bridge; load balancer
addresses live on the bridge itself, where the simulator's proxy listens.

Names carry an instance tag so several local clouds on one machine never touch each other's links."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import subprocess

log = logging.getLogger("vmray.network")


class NetworkError(RuntimeError):
    pass


async def ip(*args: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed: {err.decode().strip()}")
    return out.decode()


# Where VMs reach the Supervisor's API on their gateway: 443, the port an address written without one means
# (the seed's sample gives the IP alone), and 6443, where a real Supervisor's API answers too.
GUEST_API_PORTS = (443, 6443)


def gateway_of(vm_network: str) -> str:
    """The host's address on the VMs' bridge: the first address of the VM network."""
    return str(next(ipaddress.IPv4Network(vm_network).hosts()))


def guest_api_address(vm_network: str) -> str:
    """The Kubernetes API as the VMs see it (forwarded to the loopback API server), written as the seed tells
    users to: the IP alone, which means port 443."""
    return gateway_of(vm_network)


def overlapping_routes(route_listing: str, network: ipaddress.IPv4Network) -> list[str]:
    """The routes of `ip -4 route show` output that cover addresses of `network`, the default route aside."""
    taken: list[str] = []
    for line in route_listing.splitlines():
        destination = line.split(" ", 1)[0]
        if not destination or destination == "default":
            continue
        try:
            routed = ipaddress.IPv4Network(destination, strict=False)
        except ValueError:
            continue
        if routed.overlaps(network):
            taken.append(line.strip())
    return taken


def free_network(candidates: list[str]) -> str:
    """The first of `candidates` that no route of this host covers yet, so that a local cloud started beside
    another (or beside one killed without `local down`) still gets a network of its own."""
    listing = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, check=True).stdout
    for candidate in candidates:
        if not overlapping_routes(listing, ipaddress.IPv4Network(candidate)):
            return candidate
    raise NetworkError(f"every candidate network is routed on this host already: {', '.join(candidates)}")


class VmNetwork:
    def __init__(self, instance: str, vm_network: str) -> None:
        self.instance = instance
        self.network = ipaddress.IPv4Network(vm_network)
        self.gateway = ipaddress.IPv4Address(gateway_of(vm_network))
        self.bridge = f"vrbr{instance}"
        self._count = 0
        self._namespaces: dict[str, tuple[str, str]] = {}  # vm key -> (netns, host-side veth)

    def namespace_prefix(self) -> str:
        return f"vmray-{self.instance}-"

    async def setup(self) -> None:
        await self.teardown()  # leftovers of a simulator that was killed
        taken = overlapping_routes(await ip("-4", "route", "show"), self.network)
        if taken:
            # Two bridges with one network make the VMs' traffic leave by whichever the kernel picks first.
            raise NetworkError(
                f"the VM network {self.network} is routed on this host already ({'; '.join(taken)}): another local "
                "cloud uses it, or one was killed without `vmray-operator local down`; give --vm-network another "
                "network or delete that link (`ip link del <dev>`)"
            )
        await ip("link", "add", self.bridge, "type", "bridge")
        await ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        await ip("link", "set", self.bridge, "up")

    async def attach(self, key: str, address: str) -> str:
        """A namespace for the VM `key`, with `address` on its eth0 and a default route to the bridge."""
        if key in self._namespaces:
            return self._namespaces[key][0]
        self._count += 1
        netns = f"{self.namespace_prefix()}{self._count}"
        host_side, guest_side = f"vh{self.instance}{self._count:x}", f"vg{self.instance}{self._count:x}"
        await ip("netns", "add", netns)
        await ip("link", "add", host_side, "type", "veth", "peer", "name", guest_side)
        await ip("link", "set", guest_side, "netns", netns)
        await ip("link", "set", host_side, "master", self.bridge)
        await ip("link", "set", host_side, "up")
        await ip("-n", netns, "link", "set", guest_side, "name", "eth0")
        await ip("-n", netns, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
        await ip("-n", netns, "link", "set", "eth0", "up")
        await ip("-n", netns, "link", "set", "lo", "up")
        await ip("-n", netns, "route", "add", "default", "via", str(self.gateway))
        self._namespaces[key] = (netns, host_side)
        return netns

    def namespace_of(self, key: str) -> str | None:
        entry = self._namespaces.get(key)
        return entry[0] if entry else None

    async def detach(self, key: str) -> None:
        entry = self._namespaces.pop(key, None)
        if entry is None:
            return
        netns, host_side = entry
        await ip("link", "del", host_side, check=False)
        await ip("netns", "del", netns, check=False)

    async def add_address(self, address: str) -> None:
        await ip("addr", "add", f"{address}/32", "dev", self.bridge)

    async def remove_address(self, address: str) -> None:
        await ip("addr", "del", f"{address}/32", "dev", self.bridge, check=False)

    async def pids(self, netns: str) -> list[int]:
        out = await ip("netns", "pids", netns, check=False)
        return [int(p) for p in out.split()]

    async def teardown(self) -> None:
        for netns in (await ip("netns", "list", check=False)).split("\n"):
            name = netns.split(" ")[0]
            if name.startswith(self.namespace_prefix()):
                await ip("netns", "del", name, check=False)
        await ip("link", "del", self.bridge, check=False)
        self._namespaces.clear()

    def remove_everything_sync(self) -> list[str]:
        """For `local down` after the simulator is gone: no process, namespace or link is left."""
        removed: list[str] = []
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            name = line.split(" ")[0]
            if not name.startswith(self.namespace_prefix()):
                continue
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            removed.append(name)
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
        for line in links.splitlines():
            link = line.split(":")[1].strip().split("@")[0]
            if link == self.bridge or link.startswith((f"vh{self.instance}", f"vg{self.instance}")):
                subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
                removed.append(link)
        return removed
