"""Everything the builders need about one cluster, gathered by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmray_operator.api.models import VMRayClusterSpec

RAY_DASHBOARD_PORT = 8265
RAY_CLIENT_PORT = 10001


@dataclass(frozen=True)
class OperatorDefaults:
    """Operator-wide settings that fill what a cluster's spec leaves open."""

    api_server_location: str = ""
    api_server_ca_cert: str = ""


@dataclass(frozen=True)
class ClusterContext:
    name: str
    namespace: str
    uid: str
    spec: VMRayClusterSpec
    nounce: str
    vmop_api_version: str
    head_address: str | None = None  # the head service's load balancer address, once known
    defaults: OperatorDefaults = field(default_factory=OperatorDefaults)

    def owner_reference(self) -> dict[str, object]:
        return {
            "apiVersion": "vmray.broadcom.com/v1alpha1",
            "kind": "VMRayCluster",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
