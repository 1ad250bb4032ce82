"""What every node fetches at boot with the cluster's ServiceAccount token, before Ray starts: its TLS
certificate (render/tls.py) and Ray's token (render/ray_auth.py). Neither is ever written into a VM's user-data;
the program that fetches them (vmray_operator.guest.fetch_credentials) is."""

from __future__ import annotations

from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import AUTH_TOKEN_FILE, CREDENTIALS_FETCH, TLS_DIR
from vmray_operator.render.guest_programs import api_command, program_text
from vmray_operator.render.ray_auth import auth_secret_name
from vmray_operator.render.tls import certificates_secret_name


def fetch_program() -> str:
    return program_text("fetch_credentials.py")


def fetch_command(ctx: ClusterContext) -> list[str]:
    """Run first in the node's container: waits for what the node fetches and writes it where Ray reads it."""
    wanted: list[str] = []
    if ctx.spec.enable_tls:
        wanted += [f"--secret={certificates_secret_name(ctx.name)}", f"--directory={TLS_DIR}"]
    if ctx.spec.enable_token_auth:
        wanted += [f"--auth-secret={auth_secret_name(ctx.name)}", f"--auth-token-file={AUTH_TOKEN_FILE}"]
    return api_command(ctx, CREDENTIALS_FETCH, after=wanted)
