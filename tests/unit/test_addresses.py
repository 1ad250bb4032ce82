from __future__ import annotations

import pytest

from vmray_operator.local.addresses import AddressPool


def test_hands_out_lowest_free_address_and_is_stable_per_key() -> None:
    pool = AddressPool("10.0.0.0/29")
    assert pool.allocate("a") == "10.0.0.1"
    assert pool.allocate("b") == "10.0.0.2"
    assert pool.allocate("a") == "10.0.0.1"
    assert len(pool) == 2


def test_released_address_is_reused_first() -> None:
    pool = AddressPool("10.0.0.0/29")
    pool.allocate("a")
    pool.allocate("b")
    pool.release("a")
    assert pool.allocate("c") == "10.0.0.1"
    assert pool.address_of("a") is None


def test_reserved_addresses_are_never_handed_out_again() -> None:
    pool = AddressPool("10.0.0.0/29")
    pool.reserve("existing", "10.0.0.1")
    assert pool.allocate("new") == "10.0.0.2"
    pool.reserve("outside", "192.0.2.1")  # not in the network: ignored
    assert pool.address_of("outside") is None


def test_exhausted_pool_raises() -> None:
    pool = AddressPool("10.0.0.0/30")  # two hosts
    pool.allocate("a")
    pool.allocate("b")
    with pytest.raises(RuntimeError, match="exhausted"):
        pool.allocate("c")
