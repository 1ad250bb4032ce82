"""Ray's mutual TLS for a cluster: where the CA and the nodes' certificates are kept, and how a node gets its
own before Ray starts.

The operator holds the cluster's CA in one Secret that no VM can read. Once a VM has an address, the operator
issues that node a certificate for it (the head's also names the load balancer address workers reach its GCS
at) into a second Secret, keyed by address. The node reads its own entry with the cluster's ServiceAccount
token at boot; the CA's private key never leaves the operator."""

from __future__ import annotations

from vmray_operator.api.contract import Body
from vmray_operator.render import names
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import TLS_DIR
from vmray_operator.render.names import ClusterSecret
from vmray_operator.render.objects import metadata

CA_CERT_KEY = "ca.crt"
CA_KEY_KEY = "ca.key"
# Addresses every node's certificate names: Ray's processes on a node also reach each other over loopback.
LOCAL_IPS = ("127.0.0.1",)
LOCAL_NAMES = ("localhost",)


def cert_key(address: str) -> str:
    return f"{address}.crt"


def key_key(address: str) -> str:
    return f"{address}.key"


def sans_key(address: str) -> str:
    """The addresses a node's certificate was issued for, comma-separated: whether it must be issued again."""
    return f"{address}.sans"


def _secret(ctx: ClusterContext, name: str, string_data: dict[str, str]) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(ctx, name, names.labels(ctx.name, names.ROLE_TLS)),
        "stringData": string_data,
    }


def ca_secret(ctx: ClusterContext, cert_pem: str, key_pem: str) -> Body:
    return _secret(ctx, ClusterSecret.CA.of(ctx.name), {CA_CERT_KEY: cert_pem, CA_KEY_KEY: key_pem})


def certificates_secret(ctx: ClusterContext, ca_cert_pem: str) -> Body:
    """The CA's certificate; the caller adds node entries (the first ones at creation, more as VMs get
    addresses)."""
    return _secret(ctx, ClusterSecret.CERTIFICATES.of(ctx.name), {CA_CERT_KEY: ca_cert_pem})


def client_secret(ctx: ClusterContext, ca_cert_pem: str, cert_pem: str, key_pem: str) -> Body:
    """A Ray client's certificate of the cluster's CA, for a notebook's ray:// connection (RAY_TLS_SERVER_CERT,
    RAY_TLS_SERVER_KEY, RAY_TLS_CA_CERT). The cluster's own token cannot read it (its Role names the certificates
    Secret only)."""
    body = _secret(
        ctx, ClusterSecret.RAY_CLIENT.of(ctx.name), {"tls.crt": cert_pem, "tls.key": key_pem, CA_CERT_KEY: ca_cert_pem}
    )
    body["type"] = "kubernetes.io/tls"
    return body


def ray_tls_env() -> dict[str, str]:
    """What makes every Ray process of a node (GCS, raylets, workers, drivers, the autoscaler) speak TLS."""
    return {
        "RAY_USE_TLS": "1",
        "RAY_TLS_SERVER_CERT": f"{TLS_DIR}/node.crt",
        "RAY_TLS_SERVER_KEY": f"{TLS_DIR}/node.key",
        "RAY_TLS_CA_CERT": f"{TLS_DIR}/ca.crt",
    }
