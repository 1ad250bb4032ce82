"""Read access to what the watches have seen, by cluster key (namespace, name)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from vmray_operator.reconcile.observed import Body, Observed, controlled_by

Key = tuple[str, str]


class Stores(Protocol):
    def cluster(self, key: Key) -> Body | None: ...
    def observed(self, key: Key) -> Observed: ...
    def cluster_keys(self) -> list[Key]: ...


def _by_name(items: Iterable[Body]) -> dict[str, Body]:
    return {item["metadata"]["name"]: item for item in items}


def _owned(items: Iterable[Body], uid: str | None) -> list[Body]:
    return [item for item in items if uid is not None and controlled_by(item, uid)]


class IndexStores:
    """Over kopf indexes (or any mapping of key -> iterable of bodies). kopf fills its indexes before
    it calls any handler, so the first reconcile after a restart already sees every existing VM."""

    def __init__(self) -> None:
        self._clusters: Mapping[Key, Iterable[Body]] = {}
        self._vms: Mapping[Key, Iterable[Body]] = {}
        self._services: Mapping[Key, Iterable[Body]] = {}
        self._secrets: Mapping[Key, Iterable[Body]] = {}
        self._config_maps: Mapping[Key, Iterable[Body]] = {}

    def bind(self, clusters: Any, vms: Any, services: Any, secrets: Any, config_maps: Any) -> None:
        self._clusters, self._vms, self._services = clusters, vms, services
        self._secrets, self._config_maps = secrets, config_maps

    def cluster(self, key: Key) -> Body | None:
        if key not in self._clusters:
            return None
        return next(iter(self._clusters[key]), None)

    def observed(self, key: Key) -> Observed:
        """The objects labelled for the cluster that the cluster controls (by ownerReferences)."""
        uid = (self.cluster(key) or {}).get("metadata", {}).get("uid")
        services = _owned(self._services[key], uid) if key in self._services else []
        return Observed(
            vms=_by_name(_owned(self._vms[key], uid)) if key in self._vms else {},
            # The head's service is the one without a deletion mark, if there are several.
            service=next(
                (s for s in services if not s["metadata"].get("deletionTimestamp")), services[0] if services else None
            ),
            secrets=_by_name(_owned(self._secrets[key], uid)) if key in self._secrets else {},
            config_maps=_by_name(_owned(self._config_maps[key], uid)) if key in self._config_maps else {},
        )

    def cluster_keys(self) -> list[Key]:
        return list(self._clusters)
