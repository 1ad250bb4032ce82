"""The kinds of objects the operator reads and writes, and how their API paths are built."""

from __future__ import annotations

from dataclasses import dataclass, replace

from vmray_operator.api import contract


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core API
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def at_version(self, version: str) -> Resource:
        return replace(self, version=version)

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource is not None:
                base += f"/{subresource}"
        return base


DEFAULT_VMOP_VERSION = "v1alpha2"

VMRAYCLUSTERS = Resource(contract.GROUP, contract.VERSION, contract.PLURAL)
SECRETS = Resource("", "v1", "secrets")
CONFIG_MAPS = Resource("", "v1", "configmaps")
SERVICES = Resource("", "v1", "services")  # a cluster's Ray metrics Service (render/monitoring.py)
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices")  # its nodes' metrics addresses
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
EVENTS = Resource("", "v1", "events")
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", namespaced=False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
ADMISSION_POLICIES = Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", namespaced=False)
ADMISSION_POLICY_BINDINGS = Resource(
    "admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", namespaced=False
)


def vm_operator(plural: str, version: str = DEFAULT_VMOP_VERSION, namespaced: bool = True) -> Resource:
    return Resource(contract.VMOP_GROUP, version, plural, namespaced)


VIRTUAL_MACHINES = vm_operator("virtualmachines")
VIRTUAL_MACHINE_SERVICES = vm_operator("virtualmachineservices")
VIRTUAL_MACHINE_CLASSES = vm_operator("virtualmachineclasses")
VIRTUAL_MACHINE_IMAGES = vm_operator("virtualmachineimages")
CLUSTER_VIRTUAL_MACHINE_IMAGES = vm_operator("clustervirtualmachineimages", namespaced=False)
