"""kopf wiring: watches feed indexes and the work queue; nothing else lives here."""

from __future__ import annotations

from typing import Any

import kopf

from vmray_operator.controller.runtime import Controller
from vmray_operator.kube.login import connection_info
from vmray_operator.kube.resources import VMOP_GROUP, VMRAY_GROUP
from vmray_operator.render.names import LABEL_CLUSTER


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    version = controller.vmop_version
    ours = {LABEL_CLUSTER: kopf.PRESENT}

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(controller.kube.configuration)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our Events come from kube/events.py
        settings.watching.server_timeout = 270
        controller.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await controller.stop()

    @kopf.index(VMRAY_GROUP, "v1alpha1", "vmrayclusters", registry=registry, id="clusters")
    def clusters(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, name): dict(body)}

    @kopf.index(VMOP_GROUP, version, "virtualmachines", labels=ours, registry=registry, id="vms")
    def vms(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[LABEL_CLUSTER]): dict(body)}

    @kopf.index(VMOP_GROUP, version, "virtualmachineservices", labels=ours, registry=registry, id="services")
    def services(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[LABEL_CLUSTER]): dict(body)}

    @kopf.index("", "v1", "secrets", labels=ours, registry=registry, id="secrets")
    def secrets(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[LABEL_CLUSTER]): dict(body)}

    @kopf.index("", "v1", "configmaps", labels=ours, registry=registry, id="config_maps")
    def config_maps(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[LABEL_CLUSTER]): dict(body)}

    def wake(namespace: str | None, cluster: str, indexes: dict[str, Any]) -> None:
        controller.stores.bind(
            indexes["clusters"], indexes["vms"], indexes["services"], indexes["secrets"], indexes["config_maps"]
        )
        controller.enqueue((namespace or "", cluster))

    @kopf.on.event(VMRAY_GROUP, "v1alpha1", "vmrayclusters", registry=registry)
    async def cluster_event(namespace: str | None, name: str, **kwargs: Any) -> None:
        wake(namespace, name, kwargs)

    @kopf.on.event(VMOP_GROUP, version, "virtualmachines", labels=ours, registry=registry)
    async def vm_event(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        wake(namespace, labels[LABEL_CLUSTER], kwargs)

    @kopf.on.event(VMOP_GROUP, version, "virtualmachineservices", labels=ours, registry=registry)
    async def service_event(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        wake(namespace, labels[LABEL_CLUSTER], kwargs)

    @kopf.on.event("", "v1", "secrets", labels=ours, registry=registry)
    async def secret_event(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        wake(namespace, labels[LABEL_CLUSTER], kwargs)

    @kopf.on.event("", "v1", "configmaps", labels=ours, registry=registry)
    async def config_map_event(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        wake(namespace, labels[LABEL_CLUSTER], kwargs)

    return registry
