"""Two local clouds on one machine never share a VM network: the second is refused with the link to blame."""

from __future__ import annotations

import pytest

from vmray_operator.local.network import NetworkError, VmNetwork, free_network


async def test_a_vm_network_another_bridge_routes_is_refused_naming_that_bridge() -> None:
    network = free_network([f"10.{second}.0.0/16" for second in (223, 225, 227)])
    first, second = VmNetwork("n0a1", network), VmNetwork("n0b2", network)
    await first.setup()
    try:
        with pytest.raises(NetworkError, match=f"{network} is routed on this host already.*{first.bridge}"):
            await second.setup()
        assert free_network([network, "10.229.0.0/16"]) == "10.229.0.0/16"
    finally:
        await second.teardown()
        await first.teardown()
    assert free_network([network]) == network
