"""Everything the builders need about one cluster, gathered by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmray_operator.api import contract
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.render.api_server import ApiServerAddress, parse_api_server
from vmray_operator.render.names import ROLE_HEAD
from vmray_operator.render.registry import RegistryCredentials

RAY_DASHBOARD_PORT = 8265
RAY_CLIENT_PORT = 10001


def dashboard_url(address: str) -> str:
    """Ray's dashboard (and job API) at the head's load balancer address."""
    return f"http://{address}:{RAY_DASHBOARD_PORT}"


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
    cluster_token: str | None = None  # the cluster ServiceAccount's token (see has_identity), once issued
    created_by: str | None = None  # the cluster's vmray.io/created-by label ("ray-cli" for `ray up`)
    password_hash: str | None = None  # from vm_password_secret, read by the caller
    registry_credentials: RegistryCredentials | None = None  # from docker_config.auth_secret_name
    cluster_root_ca: str | None = None  # ca.crt of the cluster's ServiceAccount token Secret, once issued
    new_ray_token: str | None = None  # a fresh random token, passed while the cluster's Ray token Secret is missing
    suspended: bool = False  # spec.suspend: no workers, the head powered off
    closed_types: frozenset[str] = frozenset()  # node types whose schedule keeps their workers away now

    @property
    def vm_password_hash(self) -> str | None:
        return self.spec.common_node_config.vm_password_salt_hash or self.password_hash or None

    @property
    def runs_autoscaler(self) -> bool:
        """Whether the head runs Ray's autoscaler from the operator's config. A cluster made by `ray up`
        gets its autoscaler from Ray's own launcher instead."""
        return self.spec.autoscaling.enabled and self.created_by != "ray-cli"

    @property
    def fetches_at_boot(self) -> bool:
        """Whether every node fetches something at boot with the cluster's token: its TLS certificate, Ray's token."""
        return self.spec.enable_tls or self.spec.enable_token_auth

    @property
    def has_identity(self) -> bool:
        """Whether the cluster gets a ServiceAccount: for the head's autoscaler, and for every node to fetch its
        TLS certificate and Ray's token."""
        return self.runs_autoscaler or self.fetches_at_boot

    def node_uses_token(self, role: str) -> bool:
        """Whether a node of this role gets the cluster's token in its cloud-init."""
        return self.fetches_at_boot or (role == ROLE_HEAD and self.runs_autoscaler)

    @property
    def api_server_location(self) -> str:
        """The location as written (the spec's, else the operator's default), without surrounding spaces."""
        return (self.spec.api_server.location or "").strip() or self.defaults.api_server_location.strip()

    @property
    def api_server(self) -> ApiServerAddress:
        """The parsed location; ValueError when it is empty or invalid (render only once
        api_server.api_server_problem finds nothing wrong)."""
        return parse_api_server(self.api_server_location)

    @property
    def api_server_ca_cert(self) -> str:
        return self.spec.api_server.ca_cert or self.defaults.api_server_ca_cert

    @property
    def api_server_trusted_ca(self) -> str | None:
        """The CA a node verifies the API server with: the configured one, else the cluster's root CA (which
        Kubernetes puts beside the token); None until one is known. A node never talks to it unverified."""
        return self.api_server_ca_cert or self.cluster_root_ca or None

    def owner_reference(self) -> dict[str, object]:
        return {
            "apiVersion": contract.API_VERSION,
            "kind": contract.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
