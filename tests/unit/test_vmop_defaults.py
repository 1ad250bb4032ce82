"""What VM Operator's mutating webhook writes into a new VirtualMachine, as the simulator writes it, fits the schema
of the version it is written at."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from vmray_operator.local import vmop_crds
from vmray_operator.local.vmop_defaults import (
    CREATED_AT_SCHEMA_VERSION,
    DEFAULT_NETWORK,
    defaults_patch,
    is_defaulted,
)

IMAGE = ("VirtualMachineImage", "vmi-7289e7d90a3c53e73")


def operator_vm(**spec: Any) -> dict[str, Any]:
    """A VM as the operator writes it (render/objects.py)."""
    return {
        "metadata": {"name": "ray-h-abcde", "namespace": "n", "resourceVersion": "42", "annotations": {"a": "b"}},
        "spec": {
            "className": "best-effort-small",
            "imageName": "ubuntu-2204-ray",
            "storageClass": "vsan-default-storage-policy",
            "powerState": "PoweredOn",
            "powerOffMode": "TrySoft",
            "bootstrap": {"cloudInit": {"rawCloudConfig": {"name": "s", "key": "user-data"}}},
            **spec,
        },
    }


def uuids() -> Any:
    counter = itertools.count(1)
    return lambda: f"00000000-0000-0000-0000-{next(counter):012d}"


def test_a_new_vm_gets_every_default_at_the_newest_version() -> None:
    patch = defaults_patch(operator_vm(), "v1alpha5", IMAGE, uuids())
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "42"  # a VM changed meanwhile is defaulted from its new version
    assert patch["metadata"]["annotations"][CREATED_AT_SCHEMA_VERSION] == "v1alpha5"
    spec = patch["spec"]
    assert spec["network"] == {"interfaces": [{"name": "eth0", "network": DEFAULT_NETWORK}]}
    assert spec["instanceUUID"] != spec["biosUUID"]
    assert spec["bootstrap"] == {"cloudInit": {"instanceID": spec["biosUUID"]}}
    assert spec["image"] == {"kind": "VirtualMachineImage", "name": "vmi-7289e7d90a3c53e73"}
    assert spec["hardware"] == {"ideControllers": [{"busNumber": 0}, {"busNumber": 1}]}
    assert "powerState" not in spec  # set already
    assert "className" not in spec  # nothing the operator wrote is touched


def test_older_versions_get_only_the_fields_they_have() -> None:
    patch = defaults_patch(operator_vm(), "v1alpha2", IMAGE, uuids())
    assert patch is not None
    assert set(patch["spec"]) == {"network"}
    patch = defaults_patch(operator_vm(), "v1alpha4", IMAGE, uuids())
    assert patch is not None
    assert "hardware" not in patch["spec"]
    assert "biosUUID" in patch["spec"]


@pytest.mark.parametrize("version", vmop_crds.SUPPORTED_VERSIONS)
def test_every_defaulted_field_is_in_the_versions_schema(version: str) -> None:
    crd = vmop_crds.generated("virtualmachines")
    source = vmop_crds.schema_source(crd, version)
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == source)["schema"]["openAPIV3Schema"]
    patch = defaults_patch(operator_vm(), version, IMAGE, uuids())
    assert patch is not None

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if isinstance(value, dict) and "properties" in node:
            for key, inner in value.items():
                assert key in node["properties"], f"{path}.{key} is not in {version}'s schema"
                walk(inner, node["properties"][key], f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                walk(item, node["items"], f"{path}[]")
            for item in value:
                required = node["items"].get("required", [])
                assert all(k in item for k in required), f"{path}[] lacks one of {required}"

    walk(patch["spec"], schema["properties"]["spec"], "spec")


def test_interfaces_people_give_get_the_default_network_kind() -> None:
    vm = operator_vm(network={"interfaces": [{"name": "eth0", "network": {"name": "primary"}}], "hostName": "h"})
    patch = defaults_patch(vm, "v1alpha5", IMAGE, uuids())
    assert patch is not None
    assert patch["spec"]["network"] == {
        "interfaces": [
            {
                "name": "eth0",
                "network": {"name": "primary", "kind": "Network", "apiVersion": "netoperator.vmware.com/v1alpha1"},
            }
        ],
        "hostName": "h",
    }
    complete = {"name": "eth0", "network": {"name": "p", "kind": "SubnetSet", "apiVersion": "crd.nsx.vmware.com/v1"}}
    patch = defaults_patch(operator_vm(network={"interfaces": [complete]}), "v1alpha5", IMAGE, uuids())
    assert patch is not None
    assert "network" not in patch["spec"]


def test_no_default_interface_when_networking_is_off() -> None:
    patch = defaults_patch(operator_vm(network={"disabled": True}), "v1alpha5", IMAGE, uuids())
    assert patch is not None
    assert "network" not in patch["spec"]
    vm = operator_vm()
    vm["metadata"]["annotations"]["vmoperator.vmware.com/no-default-nic"] = ""
    patch = defaults_patch(vm, "v1alpha5", IMAGE, uuids())
    assert patch is not None
    assert "network" not in patch["spec"]


def test_what_is_set_stays_and_an_unresolved_image_is_left_out() -> None:
    vm = operator_vm(biosUUID="b", instanceUUID="i")
    del vm["spec"]["powerState"]
    patch = defaults_patch(vm, "v1alpha5", None, uuids())
    assert patch is not None
    spec = patch["spec"]
    assert spec["powerState"] == "PoweredOn"
    assert "biosUUID" not in spec
    assert "instanceUUID" not in spec
    assert spec["bootstrap"] == {"cloudInit": {"instanceID": "b"}}
    assert "image" not in spec


def test_a_defaulted_vm_is_left_alone() -> None:
    vm = operator_vm()
    vm["metadata"]["annotations"][CREATED_AT_SCHEMA_VERSION] = "v1alpha5"
    assert is_defaulted(vm)
    assert defaults_patch(vm, "v1alpha5", IMAGE, uuids()) is None
    assert not is_defaulted(operator_vm())
