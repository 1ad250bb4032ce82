"""VM Operator's admission rules in the local cloud (local/vmop_admission.py): each refuses what VM Operator's
webhook refuses and lets through what it lets through, at the version the API server stores."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from vmray_operator.api import contract
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import MERGE_PATCH, ApiError, Kube
from vmray_operator.local import samples, vmop_crds
from vmray_operator.local.vmop_defaults import CREATED_AT_SCHEMA_VERSION

pytestmark = pytest.mark.simulator  # the rules are the local cloud's

Body = dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    changes: dict[str, Any] = field(default_factory=dict)  # dotted path -> value (None: removed)
    refusal: str | None = None  # words of the refusal, None: allowed
    since: str = "v1alpha2"  # the oldest version whose schema has the fields the case writes

    def skip_older(self, version: str) -> None:
        if int(version.removeprefix("v1alpha")) < int(self.since.removeprefix("v1alpha")):
            pytest.skip(f"{version} has no such field")


def changed(body: Body, changes: dict[str, Any]) -> Body:
    result = copy.deepcopy(body)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = result
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return result


@pytest.fixture(scope="module")
async def storage(kube: Kube) -> str:
    return await vmop_crds.storage_version(kube)


@pytest.fixture(scope="module")
async def place(kube: Kube) -> AsyncIterator[str]:
    """One namespace for every case of this module (nothing in it is ever started)."""
    name = f"t-adm-{uuid.uuid4().hex[:6]}"
    await samples.seed_namespace(kube, name)
    yield name
    await kube.delete(r.NAMESPACES, name)


def vm(name: str, version: str, **spec: Any) -> Body:
    """A VM as the operator writes it."""
    return {
        "apiVersion": f"{contract.VMOP_GROUP}/{version}",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": {"vmray.io/cluster": "c"}},
        "spec": {
            "className": "best-effort-small",
            "imageName": samples.VM_IMAGE,
            "storageClass": samples.STORAGE_CLASS,
            "powerState": "PoweredOn",
            "powerOffMode": "TrySoft",
            "bootstrap": {"cloudInit": {"rawCloudConfig": {"name": f"{name}-user-data", "key": "user-data"}}},
            **spec,
        },
    }


def service(name: str, version: str) -> Body:
    """The head's VirtualMachineService as the operator writes it."""
    return {
        "apiVersion": f"{contract.VMOP_GROUP}/{version}",
        "kind": "VirtualMachineService",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"vmray.io/cluster": "c", "vmray.io/role": "head"},
            "ports": [
                {"name": "gcs", "protocol": "TCP", "port": 6379, "targetPort": 6379},
                {"name": "dashboard", "protocol": "TCP", "port": 8265, "targetPort": 8265},
            ],
        },
    }


def merge_patch(changes: dict[str, Any]) -> Body:
    """The changes as a merge patch (None: the field removed)."""
    patch: Body = {}
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = patch
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return patch


async def outcome(kube: Kube, method: str, path: str, body: Body) -> str | None:
    """None when the API server accepts the (dry-run) write, else its words. Updates are merge patches: the
    simulator, if it runs, may change the object meanwhile (its finalizer, its status)."""
    content_type = MERGE_PATCH if method == "PATCH" else "application/json"
    try:
        await kube.request(method, path, {"dryRun": "All"}, body=body, content_type=content_type)
    except ApiError as error:
        return error.message
    return None


def check(words: str | None, case: Case) -> None:
    if case.refusal is None:
        assert words is None, f"{case.id}: refused: {words}"
    else:
        assert words is not None, f"{case.id}: allowed, but VM Operator refuses it"
        assert case.refusal in words, words
        assert "ValidatingAdmissionPolicy 'vmray-local.vmoperator." in words  # our rule, not the schema


INTERFACE = {"name": "eth0", "network": {"name": "primary"}}

VM_CREATE = (
    Case("as-the-operator-writes-it"),
    # validateClassOnCreate
    Case("class-missing", {"spec.className": None}, "spec.className: Required value"),
    # validateImageOnCreate
    Case("image-missing", {"spec.imageName": None}, "spec.image: Required value"),
    Case(
        "image-by-reference",
        {"spec.imageName": None, "spec.image": {"kind": "ClusterVirtualMachineImage", "name": "vmi-x"}},
        since="v1alpha3",
    ),
    Case(
        "image-of-unknown-kind",
        {"spec.image": {"kind": "ContentLibraryItem", "name": "x"}},
        "spec.image.kind: Invalid value",
        since="v1alpha3",
    ),
    # validatePowerStateOnCreate
    Case("created-suspended", {"spec.powerState": "Suspended"}, "cannot set a new VM's power state to Suspended"),
    Case("created-powered-off", {"spec.powerState": "PoweredOff"}),
    # validateNetworkHostAndDomainName
    Case("name-of-63", {"metadata.name": "h" * 63}),
    Case("name-of-64", {"metadata.name": "h" * 64}, "host name must adhere to RFC-1123"),
    Case("name-with-a-dot", {"metadata.name": "ray.head"}, 'metadata.name: Invalid value: "ray.head"'),
    Case("name-with-a-dot-and-a-host-name", {"metadata.name": "ray.head", "spec.network": {"hostName": "ray-head"}}),
    Case("host-name-of-64", {"spec.network": {"hostName": "h" * 64}}, "spec.network.hostName: Invalid value"),
    # validateBootstrap
    Case(
        "cloud-init-and-linuxprep",
        {"spec.bootstrap.linuxPrep": {"hardwareClockIsUTC": True}},
        "CloudInit may not be used with any other bootstrap provider",
    ),
    Case(
        "cloud-config-and-raw-cloud-config",
        {"spec.bootstrap.cloudInit.cloudConfig": {"timezone": "UTC"}},
        "cloudConfig and rawCloudConfig are mutually exclusive",
    ),
    Case("cloud-config-alone", {"spec.bootstrap": {"cloudInit": {"cloudConfig": {"timezone": "UTC"}}}}),
    Case(
        "linuxprep-and-sysprep",
        {"spec.bootstrap": {"linuxPrep": {}, "sysprep": {"rawSysprep": {"name": "s", "key": "k"}}}},
        "LinuxPrep may not be used with either CloudInit or Sysprep",
    ),
    Case(
        "sysprep-without-content",
        {"spec.bootstrap": {"sysprep": {}}},
        "either sysprep or rawSysprep must be provided",
    ),
    Case("raw-sysprep", {"spec.bootstrap": {"sysprep": {"rawSysprep": {"name": "s", "key": "k"}}}}),
    Case(
        "vapp-properties-and-raw-properties",
        {
            "spec.bootstrap": {
                "vAppConfig": {"properties": [{"key": "k", "value": {"value": "v"}}], "rawProperties": "s"}
            }
        },
        "properties and rawProperties are mutually exclusive",
    ),
    # validateNetwork, validateNetworkInterfaceSpec
    Case("network-as-people-write-it", {"spec.network": {"interfaces": [INTERFACE], "nameservers": ["10.0.0.2"]}}),
    Case(
        "nameserver-not-an-address", {"spec.network": {"nameservers": ["dns.example.com"]}}, "must be an IPv4 or IPv6"
    ),
    Case(
        "interface-nameserver-not-an-address",
        {"spec.network": {"interfaces": [{**INTERFACE, "nameservers": ["10.0.0.256"]}]}},
        "must be an IPv4 or IPv6",
    ),
    Case(
        "network-name-not-a-dns-name",
        {"spec.network": {"interfaces": [{"name": "eth0", "network": {"name": "VM_Network"}}]}},
        "is the resulting network interface name",
    ),
    Case(
        "address-without-prefix",
        {"spec.network": {"interfaces": [{**INTERFACE, "addresses": ["10.0.0.5"]}]}},
        "invalid CIDR address",
    ),
    Case(
        "static-address-and-gateway",
        {"spec.network": {"interfaces": [{**INTERFACE, "addresses": ["10.0.0.5/24"], "gateway4": "10.0.0.1"}]}},
    ),
    Case(
        "gateway-without-address",
        {"spec.network": {"interfaces": [{**INTERFACE, "gateway4": "10.0.0.1"}]}},
        "gateway4 must have an IPv4 address",
    ),
    Case(
        "gateway-none",
        {"spec.network": {"interfaces": [{**INTERFACE, "gateway4": "None", "dhcp4": False}]}},
    ),
    Case(
        "gateway4-an-ipv6-address",
        {"spec.network": {"interfaces": [{**INTERFACE, "addresses": ["10.0.0.5/24"], "gateway4": "fd00::1"}]}},
        "gateway4 must have an IPv4 address",
    ),
    Case(
        "dhcp-and-static-address",
        {"spec.network": {"interfaces": [{**INTERFACE, "dhcp4": True, "addresses": ["10.0.0.5/24"]}]}},
        "dhcp4 cannot be used with IPv4 addresses",
    ),
    Case("dhcp", {"spec.network": {"interfaces": [{**INTERFACE, "dhcp4": True, "addresses": ["fd00::5/64"]}]}}),
)


@pytest.mark.parametrize("case", VM_CREATE, ids=[c.id for c in VM_CREATE])
async def test_vm_create(kube: Kube, place: str, storage: str, case: Case) -> None:
    case.skip_older(storage)
    body = changed(vm("ray-w-a1b2c3d4", storage), case.changes)
    check(await outcome(kube, "POST", r.VIRTUAL_MACHINES.at_version(storage).path(place), body), case)


VM_UPDATE = (
    Case(
        "what-the-operator-patches", {"metadata.annotations": {"vmray.io/drain": "x"}, "spec.powerState": "PoweredOff"}
    ),
    Case("instance-id-filled-in", {"spec.bootstrap.cloudInit.instanceID": "0e0e"}, since="v1alpha3"),
    # validateImageOnUpdate
    Case("image-name-changed", {"spec.imageName": samples.CLUSTER_VM_IMAGE}, "spec.imageName: Invalid value"),
    # validateClassOnUpdate
    Case("class-changed", {"spec.className": "best-effort-xlarge"}, "spec.className: Invalid value"),
    # validateImmutableFields
    Case("storage-class-changed", {"spec.storageClass": "other"}, "spec.storageClass: Invalid value"),
    Case("bios-uuid-changed", {"spec.biosUUID": str(uuid.UUID(int=2))}, "spec.biosUUID: Invalid value", "v1alpha3"),
    # validateImmutableNetwork
    Case(
        "interface-added",
        {"spec.network": {"interfaces": [INTERFACE, {"name": "eth1", "network": {"name": "other"}}]}},
        "network interfaces cannot be added or removed",
    ),
    Case(
        "interface-network-changed",
        {"spec.network": {"interfaces": [{"name": "eth0", "network": {"name": "other"}}]}},
        "spec.network.interfaces: Forbidden: field is immutable",
    ),
    Case("nameservers-changed", {"spec.network": {"interfaces": [INTERFACE], "nameservers": ["10.0.0.3"]}}),
    # validateUpdatesWhenPoweredOn
    Case(
        "bootstrap-changed-while-on",
        {"spec.bootstrap.cloudInit.rawCloudConfig": {"name": "other", "key": "user-data"}},
        "spec.bootstrap: Forbidden: updates to this field is not allowed when VM power is on",
    ),
    # validateBootstrapProviderImmutable
    Case(
        "bootstrap-provider-changed",
        {"spec.powerState": "PoweredOff", "spec.bootstrap": {"linuxPrep": {}, "cloudInit": None}},
        "bootstrap provider type cannot be changed",
    ),
)


async def created_vm(kube: Kube, place: str, storage: str, **spec: Any) -> str:
    """A VM as the API server holds it after VM Operator's mutation (its defaults' marks)."""
    name = f"ray-w-{uuid.uuid4().hex[:8]}"
    if storage != "v1alpha2":  # VM Operator writes biosUUID from v1alpha3 on
        spec.setdefault("biosUUID", str(uuid.UUID(int=1)))
    body = vm(name, storage, network={"interfaces": [INTERFACE]}, **spec)
    body["metadata"]["annotations"] = {CREATED_AT_SCHEMA_VERSION: storage}
    await kube.create(r.VIRTUAL_MACHINES.at_version(storage), body, place)
    return name


@pytest.mark.parametrize("case", VM_UPDATE, ids=[c.id for c in VM_UPDATE])
async def test_vm_update(kube: Kube, place: str, storage: str, case: Case) -> None:
    case.skip_older(storage)
    vms = r.VIRTUAL_MACHINES.at_version(storage)
    name = await created_vm(kube, place, storage)
    check(await outcome(kube, "PATCH", vms.path(place, name), merge_patch(case.changes)), case)


async def test_vm_bootstrap_may_change_while_powered_off(kube: Kube, place: str, storage: str) -> None:
    """validateUpdatesWhenPoweredOn holds only while the VM is and stays powered on."""
    vms = r.VIRTUAL_MACHINES.at_version(storage)
    name = await created_vm(kube, place, storage, powerState="PoweredOff")
    new_bootstrap = {"spec.bootstrap.cloudInit.rawCloudConfig": {"name": "other", "key": "user-data"}}
    check(await outcome(kube, "PATCH", vms.path(place, name), merge_patch(new_bootstrap)), Case("off"))
    suspend = Case("suspended-from-off", {"spec.powerState": "Suspended"}, "cannot suspend a VM that is powered off")
    check(await outcome(kube, "PATCH", vms.path(place, name), merge_patch(suspend.changes)), suspend)


async def test_vm_being_deleted_may_change(kube: Kube, place: str, storage: str) -> None:
    """As VM Operator's webhook does, an update of a VM being deleted passes (its finalizers must come off)."""
    vms = r.VIRTUAL_MACHINES.at_version(storage)
    name = await created_vm(kube, place, storage)
    await kube.patch(vms, name, {"metadata": {"finalizers": ["test.vmray.io/hold"]}}, place)
    await kube.delete(vms, name, place)
    current = await kube.get(vms, name, place)
    assert current is not None
    assert current["metadata"].get("deletionTimestamp")
    check(await outcome(kube, "PATCH", vms.path(place, name), merge_patch({"spec.className": "x"})), Case("x"))
    await kube.patch(vms, name, {"metadata": {"finalizers": None}}, place)


SERVICE_CREATE = (
    Case("as-the-operator-writes-it"),
    # validateSpec
    Case("unsupported-type", {"spec.type": "NodePort"}, 'spec.type: Unsupported value: "NodePort"'),
    Case("cluster-ip", {"spec.type": "ClusterIP"}),
    Case("headless-load-balancer", {"spec.clusterIp": "None"}, "may not be set to 'None' for LoadBalancer"),
    Case("headless-cluster-ip-without-ports", {"spec.type": "ClusterIP", "spec.clusterIp": "None", "spec.ports": []}),
    # validatePorts, validateServicePort
    Case("no-ports", {"spec.ports": []}, "spec.ports: Required value"),
    Case(
        "a-port-of-several-unnamed",
        {
            "spec.ports": [
                {"name": "", "protocol": "TCP", "port": 1, "targetPort": 1},
                {"name": "b", "protocol": "TCP", "port": 2, "targetPort": 2},
            ]
        },
        "spec.ports.name",
    ),
    Case("one-unnamed-port", {"spec.ports": [{"name": "", "protocol": "TCP", "port": 1, "targetPort": 1}]}),
    Case(
        "port-name-not-a-dns-label",
        {"spec.ports": [{"name": "Ray_Client", "protocol": "TCP", "port": 1, "targetPort": 1}]},
        "spec.ports.name",
    ),
    Case(
        "port-names-twice",
        {
            "spec.ports": [
                {"name": "a", "protocol": "TCP", "port": 1, "targetPort": 1},
                {"name": "a", "protocol": "UDP", "port": 2, "targetPort": 2},
            ]
        },
        "spec.ports.name",
    ),
    Case(
        "port-zero", {"spec.ports": [{"name": "a", "protocol": "TCP", "port": 0, "targetPort": 1}]}, "spec.ports.port"
    ),
    Case(
        "target-port-too-high",
        {"spec.ports": [{"name": "a", "protocol": "TCP", "port": 1, "targetPort": 65536}]},
        "spec.ports.port",
    ),
    Case(
        "unsupported-protocol",
        {"spec.ports": [{"name": "a", "protocol": "HTTP", "port": 1, "targetPort": 1}]},
        "spec.ports.protocol: Unsupported value",
    ),
    Case(
        "same-port-twice",
        {
            "spec.ports": [
                {"name": "a", "protocol": "TCP", "port": 1, "targetPort": 1},
                {"name": "b", "protocol": "TCP", "port": 1, "targetPort": 2},
            ]
        },
        "spec.ports: Duplicate value",
    ),
    Case(
        "same-port-two-protocols",
        {
            "spec.ports": [
                {"name": "a", "protocol": "TCP", "port": 1, "targetPort": 1},
                {"name": "b", "protocol": "UDP", "port": 1, "targetPort": 1},
            ]
        },
    ),
    # validateSpec (ValidateLabels)
    Case("selector-key-with-a-space", {"spec.selector": {"ray role": "head"}}, "spec.selector: Invalid value"),
    Case("selector-value-of-64", {"spec.selector": {"role": "h" * 64}}, "spec.selector: Invalid value"),
    Case("selector-prefixed-key", {"spec.selector": {"vmray.io/role": "head", "app": ""}}),
    Case("selector-bad-prefix", {"spec.selector": {"Vmray_io/role": "head"}}, "spec.selector: Invalid value"),
    # validateSpec: loadBalancerSourceRanges
    Case("source-ranges", {"spec.loadBalancerSourceRanges": ["10.0.0.0/8", " 192.168.0.0/16 "]}),
    Case("source-range-not-a-cidr", {"spec.loadBalancerSourceRanges": ["10.0.0.1"]}, "net.ParseCIDR"),
    Case(
        "source-ranges-of-a-cluster-ip",
        {"spec.type": "ClusterIP", "spec.loadBalancerSourceRanges": ["10.0.0.0/8"]},
        "may only be used when `type` is 'LoadBalancer'",
    ),
    # validateMetadata
    Case("name-starting-with-a-digit", {"metadata.name": "9head"}, 'metadata.name: Invalid value: "9head"'),
    Case("name-with-a-dot", {"metadata.name": "ray.head"}, "a DNS-1035 label"),
    Case("name-of-64", {"metadata.name": "h" * 64}, "a DNS-1035 label"),
)


@pytest.mark.parametrize("case", SERVICE_CREATE, ids=[c.id for c in SERVICE_CREATE])
async def test_service_create(kube: Kube, place: str, storage: str, case: Case) -> None:
    body = changed(service("ray-h-a1b2c", storage), case.changes)
    check(await outcome(kube, "POST", r.VIRTUAL_MACHINE_SERVICES.at_version(storage).path(place), body), case)


SERVICE_UPDATE = (
    Case("ports-changed", {"spec.ports": [{"name": "a", "protocol": "TCP", "port": 1, "targetPort": 1}]}),
    # validateAllowedChanges
    Case("type-changed", {"spec.type": "ClusterIP"}, "spec.type: Forbidden: field is immutable"),
    Case("cluster-ip-changed", {"spec.clusterIp": "10.96.0.9"}, "spec.clusterIP: Forbidden: field is immutable"),
)


@pytest.mark.parametrize("case", SERVICE_UPDATE, ids=[c.id for c in SERVICE_UPDATE])
async def test_service_update(kube: Kube, place: str, storage: str, case: Case) -> None:
    services = r.VIRTUAL_MACHINE_SERVICES.at_version(storage)
    name = f"ray-h-{uuid.uuid4().hex[:5]}"
    await kube.create(services, service(name, storage), place)
    check(await outcome(kube, "PATCH", services.path(place, name), merge_patch(case.changes)), case)
