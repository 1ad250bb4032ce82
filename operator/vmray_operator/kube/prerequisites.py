"""Whether the vSphere objects a cluster's VMs need exist (VM classes, the image, the storage class), and
the Secrets the cluster refers to (registry credentials, the password hash), read for the builders."""

from __future__ import annotations

import time
from dataclasses import dataclass

from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.reconcile.observed import secret_value
from vmray_operator.render.registry import RegistryCredentials


@dataclass(frozen=True)
class UserSecrets:
    """What the cluster's referenced Secrets hold, and which of them (or of their keys) are missing."""

    password_hash: str | None = None
    registry: RegistryCredentials | None = None
    missing: tuple[str, ...] = ()


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

    async def user_secrets(self, namespace: str, spec: VMRayClusterSpec) -> UserSecrets:
        """Reads the Secrets the spec names; never cached, so a changed Secret reaches new VMs."""
        missing: list[str] = []
        password_hash = None
        ref = spec.common_node_config.vm_password_secret
        if ref is not None:
            password_hash = secret_value(await self.kube.get(r.SECRETS, ref.name, namespace), ref.key)
            if password_hash is None:
                missing.append(f"Secret {ref.name} (key {ref.key})")
        registry = None
        name = spec.docker_config.auth_secret_name
        if name:
            secret = await self.kube.get(r.SECRETS, name, namespace)
            username, password = secret_value(secret, "username"), secret_value(secret, "password")
            if username is None or password is None:
                missing.append(f"Secret {name} (keys username and password)")
            else:
                registry = RegistryCredentials(username, password, secret_value(secret, "registry"))
        return UserSecrets(password_hash, registry, tuple(missing))
