"""The VM Operator CRDs the local cloud serves: VM Operator's own, as controller-gen generated them (the tools cache),
for the versions and the storage version asked for."""

from __future__ import annotations

from typing import Any

import pytest

from vmray_operator.local import vmop_crds

KINDS = {
    "VirtualMachine",
    "VirtualMachineService",
    "VirtualMachineClass",
    "VirtualMachineImage",
    "ClusterVirtualMachineImage",
}


def _entry(crd: dict[str, Any], version: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return found


def test_every_kind_serves_the_versions_asked_for_with_one_stored() -> None:
    crds = vmop_crds.crds(("v1alpha2", "v1alpha4", "v1alpha5"), "v1alpha4")
    assert {c["spec"]["names"]["kind"] for c in crds} == KINDS
    for crd in crds:
        versions = crd["spec"]["versions"]
        assert [v["name"] for v in versions] == ["v1alpha2", "v1alpha4", "v1alpha5"]
        assert [v["storage"] for v in versions] == [False, True, False]
        assert all(v["served"] and v["subresources"] == {"status": {}} for v in versions)
        assert crd["spec"]["conversion"] == {"strategy": "None"}  # no conversion webhook runs here


def test_the_newest_is_stored_by_default_as_on_a_supervisor() -> None:
    for crd in vmop_crds.crds():
        stored = [v["name"] for v in crd["spec"]["versions"] if v["storage"]]
        assert stored == [vmop_crds.SUPPORTED_VERSIONS[-1]]
        assert [v["name"] for v in crd["spec"]["versions"]] == list(vmop_crds.SUPPORTED_VERSIONS)


def test_schemas_are_vm_operators_own() -> None:
    vm = next(c for c in vmop_crds.crds() if c["spec"]["names"]["kind"] == "VirtualMachine")
    generated = vmop_crds.generated("virtualmachines")
    assert vm["metadata"]["annotations"]["controller-gen.kubebuilder.io/version"]
    for version in ("v1alpha2", "v1alpha5"):
        assert _entry(vm, version)["schema"] == _entry(generated, version)["schema"]
    spec = _entry(vm, "v1alpha5")["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["powerOffMode"]["enum"] == ["Hard", "Soft", "TrySoft"]
    assert "x-kubernetes-preserve-unknown-fields" not in spec  # an unknown field is pruned, or refused when strict
    columns = [c["name"] for c in _entry(vm, "v1alpha5")["additionalPrinterColumns"]]
    assert "Primary-IP4" in columns


def test_a_version_the_module_lacks_is_served_with_its_stand_in() -> None:
    generated = vmop_crds.generated("virtualmachines")
    names = {v["name"] for v in generated["spec"]["versions"]}
    vm = next(c for c in vmop_crds.crds() if c["spec"]["names"]["kind"] == "VirtualMachine")
    source = "v1alpha6" if "v1alpha6" in names else vmop_crds.STAND_INS["v1alpha6"]
    assert vmop_crds.schema_source(generated, "v1alpha6") == source
    assert _entry(vm, "v1alpha6")["schema"] == _entry(generated, source)["schema"]
    with pytest.raises(ValueError, match="no version v1alpha9"):
        vmop_crds.schema_source(generated, "v1alpha9")


def test_scopes_match_vm_operator() -> None:
    scopes = {c["spec"]["names"]["kind"]: c["spec"]["scope"] for c in vmop_crds.crds()}
    assert scopes["ClusterVirtualMachineImage"] == "Cluster"
    assert scopes["VirtualMachineClass"] == "Namespaced"


def test_needs_a_version_and_a_served_storage_version() -> None:
    with pytest.raises(ValueError, match="at least one"):
        vmop_crds.crds(())
    with pytest.raises(ValueError, match="storage version v1alpha3 is not among"):
        vmop_crds.crds(("v1alpha2", "v1alpha4"), "v1alpha3")
