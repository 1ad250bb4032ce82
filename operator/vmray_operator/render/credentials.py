"""What every node fetches at boot with the cluster's ServiceAccount token, before Ray starts: its TLS
certificate (render/tls.py) and Ray's token (render/ray_auth.py). Neither is ever written into a VM's user-data;
the program that fetches them (vmray_operator.guest.node_agent) is."""

from __future__ import annotations

from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import AUTH_TOKEN_FILE, TLS_DIR
from vmray_operator.render.guest_programs import agent_command
from vmray_operator.render.names import ClusterSecret


def fetch_command(ctx: ClusterContext) -> list[str]:
    """Run first in the node's container: waits for what the node fetches and writes it where Ray reads it."""
    wanted: list[str] = []
    if ctx.spec.enable_tls:
        wanted += [f"--secret={ClusterSecret.CERTIFICATES.of(ctx.name)}", f"--directory={TLS_DIR}"]
    if ctx.spec.enable_token_auth:
        wanted += [f"--auth-secret={ClusterSecret.RAY_TOKEN.of(ctx.name)}", f"--auth-token-file={AUTH_TOKEN_FILE}"]
    return agent_command(ctx, "fetch-credentials", wanted)
