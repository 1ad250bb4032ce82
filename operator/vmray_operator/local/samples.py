"""The vSphere objects a VI admin would attach to a namespace, for the local cloud: a storage class,
VM classes and VM images named like the seed sample's placeholders."""

from __future__ import annotations

import contextlib

from vmray_operator.api.contract import Body
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Conflict, Kube

STORAGE_CLASS = "vsan-default-storage-policy"
VM_CLASSES = {"best-effort-small": (2, "4Gi"), "best-effort-xlarge": (4, "32Gi")}
VM_IMAGE = "vmi-7289e7d90a3c53e73"
VM_IMAGE_DISPLAY_NAME = "ubuntu-2204-ray"
CLUSTER_VM_IMAGE = "vmi-ubuntu-cluster"
CONTENT_LIBRARY_API = "imageregistry.vmware.com/v1alpha1"


async def _create(kube: Kube, resource: r.Resource, body: Body, namespace: str | None = None) -> Body | None:
    with contextlib.suppress(Conflict):
        return await kube.create(resource, body, namespace)
    return None


def vm_class(name: str, cpus: int, api_version: str, memory: str | None = None) -> Body:
    """A VirtualMachineClass as a VI admin makes one for a namespace."""
    hardware: Body = {"cpus": cpus}
    if memory:
        hardware["memory"] = memory
    return {
        "apiVersion": api_version,
        "kind": "VirtualMachineClass",
        "metadata": {"name": name},
        "spec": {"hardware": hardware, "policies": {"resources": {}}},
    }


def vm_image(name: str, api_version: str, namespace: str) -> Body:
    """A VirtualMachineImage of a namespace, its display name its own name."""
    return _image("VirtualMachineImage", name, name, api_version, namespace)


def _image(kind: str, name: str, display_name: str, api_version: str, namespace: str | None = None) -> Body:
    meta: Body = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": meta,
        # a content library item is where a Supervisor's images come from
        "spec": {
            "providerRef": {"apiVersion": CONTENT_LIBRARY_API, "kind": "ContentLibraryItem", "name": f"clitem-{name}"}
        },
    }


async def _set_image_status(kube: Kube, resource: r.Resource, name: str, display: str, ns: str | None) -> None:
    await kube.patch(
        resource,
        name,
        {
            "status": {
                "name": display,
                "osInfo": {"type": "ubuntu64Guest", "version": "22.04"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "True",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        },
        ns,
        subresource="status",
    )


async def seed_cluster(kube: Kube, vmop_version: str = r.DEFAULT_VMOP_VERSION) -> None:
    """Cluster-scoped objects: the storage class and a cluster-wide VM image."""
    await _create(
        kube,
        r.STORAGE_CLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "csi.vsphere.vmware.com",
        },
    )
    cvmi = r.CLUSTER_VIRTUAL_MACHINE_IMAGES.at_version(vmop_version)
    if await _create(
        kube,
        cvmi,
        _image("ClusterVirtualMachineImage", CLUSTER_VM_IMAGE, "ubuntu-2204-cluster", cvmi.api_version),
    ):
        await _set_image_status(kube, cvmi, CLUSTER_VM_IMAGE, "ubuntu-2204-cluster", None)


async def seed_namespace(kube: Kube, namespace: str, vmop_version: str = r.DEFAULT_VMOP_VERSION) -> None:
    """The namespace itself and the VM classes and image a VI admin attaches to it."""
    await _create(kube, r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    classes = r.VIRTUAL_MACHINE_CLASSES.at_version(vmop_version)
    for name, (cpus, memory) in VM_CLASSES.items():
        await _create(kube, classes, vm_class(name, cpus, classes.api_version, memory), namespace)
    images = r.VIRTUAL_MACHINE_IMAGES.at_version(vmop_version)
    if await _create(
        kube,
        images,
        _image("VirtualMachineImage", VM_IMAGE, VM_IMAGE_DISPLAY_NAME, images.api_version, namespace),
        namespace,
    ):
        await _set_image_status(kube, images, VM_IMAGE, VM_IMAGE_DISPLAY_NAME, namespace)
