"""Address pools of the simulated vSphere networks: one for VMs, one for load balancers."""

from __future__ import annotations

import ipaddress


class AddressPool:
    """Hands out the lowest free host address of a network to a key, the same one for the same key."""

    def __init__(self, network: str) -> None:
        self.network = ipaddress.IPv4Network(network)
        self._by_key: dict[str, ipaddress.IPv4Address] = {}
        self._hosts = self.network.hosts()
        self._released: list[ipaddress.IPv4Address] = []

    def reserve(self, key: str, address: str) -> None:
        """Records an address already in use (learnt from existing objects at start-up)."""
        ip = ipaddress.IPv4Address(address)
        if ip in self.network and ip not in self._by_key.values():
            self._by_key[key] = ip

    def allocate(self, key: str) -> str:
        if key in self._by_key:
            return str(self._by_key[key])
        used = set(self._by_key.values())
        while self._released:
            candidate = self._released.pop(0)
            if candidate not in used:
                self._by_key[key] = candidate
                return str(candidate)
        for candidate in self._hosts:
            if candidate not in used:
                self._by_key[key] = candidate
                return str(candidate)
        raise RuntimeError(f"address pool {self.network} is exhausted")

    def release(self, key: str) -> None:
        ip = self._by_key.pop(key, None)
        if ip is not None:
            self._released.append(ip)
            self._released.sort()

    def address_of(self, key: str) -> str | None:
        ip = self._by_key.get(key)
        return str(ip) if ip else None

    def __len__(self) -> int:
        return len(self._by_key)
