"""The fields VM Operator's mutating webhook writes into a new VirtualMachine (its
webhooks/virtualmachine/mutation, at the release whose CRDs the local cloud serves), as a merge patch the
simulator sends when it first sees a VM. Pure: the new UUIDs and the resolved image are passed in.

Why the simulator and not a MutatingAdmissionPolicy: the pinned Kubernetes serves that API only as a beta behind
a feature gate that is off by default, its CEL cannot make the random UUIDs VM Operator writes, and it cannot
look up the VirtualMachineImage that `imageName` names (by object or display name) to write `spec.image`. The
difference that remains: the defaults arrive in a second write a moment after the create instead of in the create
itself, so the update rules of vmop_admission.py apply once a VM carries them (`is_defaulted`).

Each field is written only at the versions whose schema has it (the simulator writes at the storage version)."""

from __future__ import annotations

from collections.abc import Callable

from vmray_operator.api.contract import VMOP_GROUP, Body

CREATED_AT_BUILD_VERSION = f"{VMOP_GROUP}/created-at-build-version"
CREATED_AT_SCHEMA_VERSION = f"{VMOP_GROUP}/created-at-schema-version"
NO_DEFAULT_NIC = f"{VMOP_GROUP}/no-default-nic"
BUILD_VERSION = "vmray-local-simulator"
DEFAULT_INTERFACE = "eth0"
# The default network of a Supervisor networked by a vSphere Distributed Switch (VM Operator's "VDS" provider):
# a netoperator Network, named by nobody (the namespace's default network).
DEFAULT_NETWORK: Body = {"apiVersion": "netoperator.vmware.com/v1alpha1", "kind": "Network", "name": ""}
IDE_CONTROLLERS = 2  # VM Operator's maximum of IDE controllers, all of which it adds to a VM without any


def _at_least(version: str, oldest: str) -> bool:
    return int(version.removeprefix("v1alpha")) >= int(oldest.removeprefix("v1alpha"))


def is_defaulted(vm: Body) -> bool:
    """Whether the VM carries VM Operator's defaults already (its created-at annotations)."""
    return CREATED_AT_SCHEMA_VERSION in ((vm.get("metadata") or {}).get("annotations") or {})


def _network(vm: Body) -> Body | None:
    """spec.network with the default interface (AddDefaultNetworkInterface), or None when it stays as it is."""
    spec = vm.get("spec") or {}
    network: Body = dict(spec.get("network") or {})
    interfaces: list[Body] = [dict(i) for i in network.get("interfaces") or []]
    annotations = (vm.get("metadata") or {}).get("annotations") or {}
    if network.get("disabled") or (NO_DEFAULT_NIC in annotations and not interfaces):
        return None
    if not interfaces:
        return {**network, "interfaces": [{"name": DEFAULT_INTERFACE, "network": dict(DEFAULT_NETWORK)}]}
    changed = False
    for interface in interfaces:
        ref = dict(interface.get("network") or {"name": ""})
        for key in ("apiVersion", "kind"):
            ref[key] = ref.get(key) or DEFAULT_NETWORK[key]
        if ref != interface.get("network"):
            interface["network"] = ref
            changed = True
    return {**network, "interfaces": interfaces} if changed else None


def defaults_patch(vm: Body, version: str, image: tuple[str, str] | None, new_uuid: Callable[[], str]) -> Body | None:
    """The merge patch that gives `vm` VM Operator's defaults at `version`, or None when it has them.

    image: (kind, name) of the VirtualMachineImage or ClusterVirtualMachineImage that spec.imageName names,
    None when it names none (VM Operator refuses such a VM; here its VirtualMachineImageReady condition says so).
    The patch carries the VM's resourceVersion: a VM changed meanwhile is defaulted from its newer version."""
    if is_defaulted(vm):
        return None
    meta, spec = vm.get("metadata") or {}, vm.get("spec") or {}
    patch_spec: Body = {}
    network = _network(vm)
    if network is not None:
        patch_spec["network"] = network
    if not spec.get("powerState"):
        patch_spec["powerState"] = "PoweredOn"
    if _at_least(version, "v1alpha3"):
        if not spec.get("instanceUUID"):
            patch_spec["instanceUUID"] = new_uuid()
        bios_uuid = spec.get("biosUUID") or new_uuid()
        if not spec.get("biosUUID"):
            patch_spec["biosUUID"] = bios_uuid
        cloud_init = (spec.get("bootstrap") or {}).get("cloudInit")
        if cloud_init is not None and not cloud_init.get("instanceID"):
            patch_spec["bootstrap"] = {"cloudInit": {"instanceID": bios_uuid}}
        if image is not None and not spec.get("image"):
            patch_spec["image"] = {"kind": image[0], "name": image[1]}
    if _at_least(version, "v1alpha5") and not (spec.get("hardware") or {}).get("ideControllers"):
        patch_spec["hardware"] = {"ideControllers": [{"busNumber": n} for n in range(IDE_CONTROLLERS)]}
    annotations = {CREATED_AT_BUILD_VERSION: BUILD_VERSION, CREATED_AT_SCHEMA_VERSION: version}
    patch: Body = {"metadata": {"annotations": annotations, "resourceVersion": meta.get("resourceVersion")}}
    if patch_spec:
        patch["spec"] = patch_spec
    return patch
