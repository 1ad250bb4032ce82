"""Ray's token authentication for a cluster (Ray 2.52 and later): one random token per cluster, which every Ray
process of every node and every client (the dashboard, the job API, ray://) must present.

The token lives in a Secret the operator makes once. Like a node's TLS certificate, it never goes into a VM's
user-data: each node reads it at boot with the cluster's ServiceAccount token (guest/node_agent.py) into a file
only root reads, which RAY_AUTH_TOKEN_PATH names. People read it from the Secret (status.endpoints names it)."""

from __future__ import annotations

from vmray_operator.api.contract import Body
from vmray_operator.render import names
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import AUTH_TOKEN_FILE
from vmray_operator.render.names import ClusterSecret
from vmray_operator.render.objects import metadata

TOKEN_KEY = "token"
TOKEN_BYTES = 32  # as Ray's own `ray get-auth-token --generate`: 256 bits


def auth_secret(ctx: ClusterContext, token: str) -> Body:
    """The cluster's Ray token: made once, never changed (every node and client holds it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(ctx, ClusterSecret.RAY_TOKEN.of(ctx.name), names.labels(ctx.name, names.ROLE_AUTH)),
        "stringData": {TOKEN_KEY: token},
    }


def ray_auth_env(ctx: ClusterContext) -> dict[str, str]:
    """What every Ray process of a node needs. Off, Ray is told so: Ray announces token authentication on by
    default for every cluster, and nodes that each made a token of their own could not form one cluster."""
    if not ctx.spec.enable_token_auth:
        return {"RAY_AUTH_MODE": "disabled"}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": AUTH_TOKEN_FILE}
