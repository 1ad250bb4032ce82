"""The standard-library program that runs on a node beside Ray (vmray_operator.guest.node_agent): the text
cloud-init writes, and the command that runs one of its commands against the Supervisor's API as the cluster's
ServiceAccount."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import API_SERVER_CA, NODE_AGENT


@cache  # read once: a VM's bootstrap must not change because a file changed under a running operator
def agent_program() -> str:
    return resources.files("vmray_operator.guest").joinpath("node_agent.py").read_text()


def agent_command(ctx: ClusterContext, command: str, arguments: Sequence[str]) -> list[str]:
    """`python3 node_agent.py <command>` against the cluster's API server, which it always verifies with the CA
    cloud-init wrote (it sends the cluster's token), and the command's own arguments."""
    return [
        "python3",
        NODE_AGENT,
        command,
        f"--api-server={ctx.api_server.authority}",
        f"--ca-cert={API_SERVER_CA}",
        f"--namespace={ctx.namespace}",
        *arguments,
    ]
