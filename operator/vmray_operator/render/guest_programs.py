"""The standard-library programs that run on a node beside Ray (vmray_operator.guest): the text cloud-init
writes, and the command that starts one against the Supervisor's API as the cluster's ServiceAccount."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import API_SERVER_CA


@cache  # read once: a VM's bootstrap must not change because a file changed under a running operator
def program_text(file_name: str) -> str:
    return resources.files("vmray_operator.guest").joinpath(file_name).read_text()


def api_command(ctx: ClusterContext, path: str, before: Sequence[str] = (), after: Sequence[str] = ()) -> list[str]:
    """`python3 path`, the program's own arguments around where the API server, its CA and the namespace are
    given. The program always verifies the API server with that CA: it sends the cluster's token."""
    return [
        "python3",
        path,
        *before,
        f"--api-server={ctx.api_server.authority}",
        f"--ca-cert={API_SERVER_CA}",
        f"--namespace={ctx.namespace}",
        *after,
    ]
