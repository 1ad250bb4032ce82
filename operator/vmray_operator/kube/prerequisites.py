"""Whether the vSphere objects a cluster's VMs need exist (VM classes, the image, the storage class), and
the Secrets the cluster refers to (registry credentials, the password hash), read for reconcile/user_secrets."""

from __future__ import annotations

import time

from vmray_operator.api.contract import Body
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube


class PrerequisiteChecker:
    """Looks each prerequisite up, remembering the ones found for a while: many clusters in a
    namespace share their class and image, and a found object is rarely deleted. Missing ones are
    looked up again every time, so a cluster recovers as soon as the object appears."""

    def __init__(self, kube: Kube, vmop_version: str, remember_found: float = 30.0) -> None:
        self.kube = kube
        self.version = vmop_version
        self.remember_found = remember_found
        self._found: dict[tuple[str, str, str], float] = {}

    async def _exists(self, kind: str, namespace: str, name: str) -> bool:
        key = (kind, namespace, name)
        if time.monotonic() - self._found.get(key, float("-inf")) < self.remember_found:
            return True
        exists = await self._look_up(kind, namespace, name)
        if exists:
            self._found[key] = time.monotonic()
        return exists

    async def _look_up(self, kind: str, namespace: str, name: str) -> bool:
        if kind == "VirtualMachineClass":
            return await self.kube.get(r.VIRTUAL_MACHINE_CLASSES.at_version(self.version), name, namespace) is not None
        if kind == "StorageClass":
            return await self.kube.get(r.STORAGE_CLASSES, name) is not None
        namespaced = r.VIRTUAL_MACHINE_IMAGES.at_version(self.version)
        cluster = r.CLUSTER_VIRTUAL_MACHINE_IMAGES.at_version(self.version)
        if await self.kube.get(namespaced, name, namespace) or await self.kube.get(cluster, name):
            return True
        # VM Operator also accepts an image's display name
        candidates = await self.kube.list(namespaced, namespace) + await self.kube.list(cluster)
        return any((image.get("status") or {}).get("name") == name for image in candidates)

    async def missing(self, namespace: str, spec: VMRayClusterSpec) -> list[str]:
        """'Kind name' of every prerequisite that does not exist; empty when all do."""
        common = spec.common_node_config
        wanted = [
            ("VirtualMachineClass", c) for c in sorted({t.vm_class for t in common.available_node_types.values()})
        ]
        wanted += [("VirtualMachineImage", common.vm_image), ("StorageClass", common.storage_class)]
        return [f"{kind} {name}" for kind, name in wanted if not await self._exists(kind, namespace, name)]

    async def secrets(self, namespace: str, secret_names: list[str]) -> dict[str, Body | None]:
        """The named Secrets of the namespace (None for one that does not exist); never cached, so a changed
        Secret reaches new VMs."""
        return {name: await self.kube.get(r.SECRETS, name, namespace) for name in secret_names}
