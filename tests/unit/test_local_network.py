"""The local cloud's network: a VM network another bridge already routes is refused, never shared."""

from __future__ import annotations

import ipaddress

from vmray_operator.local.network import overlapping_routes

LISTING = """default via 172.17.0.1 dev eth0
10.213.0.0/16 dev vrbra1f7 proto kernel scope link src 10.213.0.1
172.17.0.0/16 dev eth0 proto kernel scope link src 172.17.0.5
192.168.7.9 via 172.17.0.1 dev eth0
"""


def test_a_network_routed_by_a_leftover_bridge_is_taken() -> None:
    taken = overlapping_routes(LISTING, ipaddress.IPv4Network("10.213.0.0/16"))
    assert taken == ["10.213.0.0/16 dev vrbra1f7 proto kernel scope link src 10.213.0.1"]


def test_a_smaller_or_larger_network_that_overlaps_is_taken_too() -> None:
    assert overlapping_routes(LISTING, ipaddress.IPv4Network("10.213.4.0/24"))
    assert overlapping_routes(LISTING, ipaddress.IPv4Network("10.0.0.0/8"))
    assert overlapping_routes(LISTING, ipaddress.IPv4Network("192.168.7.0/24")) == [
        "192.168.7.9 via 172.17.0.1 dev eth0"
    ]


def test_the_default_route_and_other_networks_leave_a_network_free() -> None:
    assert overlapping_routes(LISTING, ipaddress.IPv4Network("10.217.0.0/16")) == []
    assert overlapping_routes("", ipaddress.IPv4Network("10.213.0.0/16")) == []
