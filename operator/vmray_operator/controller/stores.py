"""Read access to what the watches have seen, by cluster key (namespace, name)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from vmray_operator.api.contract import Body
from vmray_operator.reconcile.observed import Observed, controlled_by, user_data_digest
from vmray_operator.render.objects import USER_DATA_KEY

Key = tuple[str, str]
_IDENTITY_KINDS = {"ServiceAccount": "service_accounts", "Role": "roles", "RoleBinding": "role_bindings"}
# The indexes the watches fill (handlers.py), each mapping a cluster key to the objects of one kind.
INDEXES = (
    "clusters",
    "vms",
    "services",
    "secrets",
    "config_maps",
    "service_accounts",
    "roles",
    "role_bindings",
    "metrics_services",
    "endpoint_slices",
)


# kubectl apply's copy of what a person applied: no decision reads it, and it repeats the whole spec.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def stored(body: Mapping[str, Any]) -> Body:
    """What the stores keep of a watched object: all but what no decision reads and what makes up much of its size
    (managedFields, kubectl's last-applied copy; a bootstrap Secret's user-data is kept as its digest). The
    object's own nested parts are shared, not copied."""
    meta = {key: value for key, value in body["metadata"].items() if key != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {key: value for key, value in annotations.items() if key != LAST_APPLIED}
    kept = {**body, "metadata": meta}
    data = body.get("data")
    if isinstance(data, Mapping) and isinstance(data.get(USER_DATA_KEY), str):
        kept["data"] = {**data, USER_DATA_KEY: user_data_digest(data[USER_DATA_KEY])}
    return kept


class Stores(Protocol):
    def cluster(self, key: Key) -> Body | None: ...
    def observed(self, key: Key) -> Observed: ...
    def cluster_keys(self) -> list[Key]: ...


def _by_name(items: Iterable[Body]) -> dict[str, Body]:
    return {item["metadata"]["name"]: item for item in items}


class IndexStores:
    """Over kopf indexes (or any mapping of key -> iterable of bodies). kopf fills its indexes before
    it calls any handler, so the first reconcile after a restart already sees every existing VM."""

    def __init__(self) -> None:
        self._indexes: Mapping[str, Mapping[Key, Iterable[Body]]] = {name: {} for name in INDEXES}

    def bind(self, indexes: Mapping[str, Any]) -> None:
        self._indexes = {name: indexes[name] for name in INDEXES}

    def _of(self, index: str, key: Key, uid: str | None) -> list[Body]:
        """The objects of one index labelled for the cluster that the cluster controls (by ownerReferences)."""
        items = self._indexes[index].get(key, ())
        return [item for item in items if uid is not None and controlled_by(item, uid)]

    def cluster(self, key: Key) -> Body | None:
        return next(iter(self._indexes["clusters"].get(key, ())), None)

    def observed(self, key: Key) -> Observed:
        uid = (self.cluster(key) or {}).get("metadata", {}).get("uid")
        services = self._of("services", key, uid)
        return Observed(
            vms=_by_name(self._of("vms", key, uid)),
            # The head's service is the one without a deletion mark, if there are several.
            service=next(
                (s for s in services if not s["metadata"].get("deletionTimestamp")), services[0] if services else None
            ),
            secrets=_by_name(self._of("secrets", key, uid)),
            config_maps=_by_name(self._of("config_maps", key, uid)),
            identity={kind: _by_name(self._of(index, key, uid)) for kind, index in _IDENTITY_KINDS.items()},
            metrics_service=next(iter(self._of("metrics_services", key, uid)), None),
            endpoint_slices=_by_name(self._of("endpoint_slices", key, uid)),
        )

    def cluster_keys(self) -> list[Key]:
        return list(self._indexes["clusters"])
