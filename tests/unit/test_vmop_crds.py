from __future__ import annotations

import pytest

from vmray_operator.local import vmop_crds


def test_every_kind_serves_every_version_with_the_first_as_storage() -> None:
    crds = vmop_crds.crds(("v1alpha2", "v1alpha5"))
    assert {c["spec"]["names"]["kind"] for c in crds} == {
        "VirtualMachine",
        "VirtualMachineService",
        "VirtualMachineClass",
        "VirtualMachineImage",
        "ClusterVirtualMachineImage",
    }
    for crd in crds:
        versions = crd["spec"]["versions"]
        assert [v["name"] for v in versions] == ["v1alpha2", "v1alpha5"]
        assert [v["storage"] for v in versions] == [True, False]
        assert all(v["subresources"] == {"status": {}} for v in versions)


def test_scopes_match_vm_operator() -> None:
    scopes = {c["spec"]["names"]["kind"]: c["spec"]["scope"] for c in vmop_crds.crds()}
    assert scopes["ClusterVirtualMachineImage"] == "Cluster"
    assert scopes["VirtualMachineClass"] == "Namespaced"


def test_needs_a_version() -> None:
    with pytest.raises(ValueError, match="at least one"):
        vmop_crds.crds(())
