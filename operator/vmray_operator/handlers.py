"""kopf wiring: watches feed indexes and the work queue; nothing else lives here."""

from __future__ import annotations

from typing import Any

import kopf

from vmray_operator.api.contract import LABEL_CLUSTER
from vmray_operator.controller.runtime import Controller
from vmray_operator.controller.stores import INDEXES, stored
from vmray_operator.kube import resources as r
from vmray_operator.kube.login import connection_info


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    ours = {LABEL_CLUSTER: kopf.PRESENT}
    # What a cluster is made of, each kind watched by its label and indexed by the cluster it belongs to: a change
    # of any of them (a VM's address, a deleted Role) wakes its cluster's reconcile.
    labelled = {
        "vms": r.VIRTUAL_MACHINES.at_version(controller.vmop_version),
        "services": r.VIRTUAL_MACHINE_SERVICES.at_version(controller.vmop_version),
        "secrets": r.SECRETS,
        "config_maps": r.CONFIG_MAPS,
        "service_accounts": r.SERVICE_ACCOUNTS,
        "roles": r.ROLES,
        "role_bindings": r.ROLE_BINDINGS,
        "metrics_services": r.SERVICES,
        "endpoint_slices": r.ENDPOINT_SLICES,
    }

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

    def bind(indexes: dict[str, Any]) -> None:
        """kopf hands its indexes to handlers only: the stores read through them."""
        controller.stores.bind({name: indexes[name] for name in INDEXES})

    clusters = r.VMRAYCLUSTERS

    @kopf.index(clusters.group, clusters.version, clusters.plural, registry=registry, id="clusters")
    def cluster_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, name): stored(body)}

    @kopf.on.event(clusters.group, clusters.version, clusters.plural, registry=registry)
    async def cluster_event(namespace: str | None, name: str, type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        bind(kwargs)
        controller.cluster_seen((namespace or "", name), None if type == "DELETED" else stored(body))

    def by_cluster(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[LABEL_CLUSTER]): stored(body)}

    async def part_event(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        bind(kwargs)
        controller.enqueue((namespace or "", labels[LABEL_CLUSTER]))

    for index, resource in labelled.items():
        kind = (resource.group, resource.version, resource.plural)
        kopf.index(*kind, labels=ours, registry=registry, id=index)(by_cluster)
        kopf.on.event(*kind, labels=ours, registry=registry, id=f"{index}_event")(part_event)

    return registry
