"""The cloud-config of a node: the login user, the Ray node service and the commands, as YAML made
from data (user input never goes into YAML or shell by string pasting)."""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any

import jinja2
import yaml

from vmray_operator.render.context import ClusterContext
from vmray_operator.render.ray_node import CONTAINER_NAME, NodeRuntime


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so the user-data reads like the files it writes."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vmray_operator.render", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # shell and systemd text, not HTML; values are quoted with shell_quote
    )
    env.filters["shell_quote"] = lambda value: shlex.quote(str(value))
    return env


def _script(lines: list[str], header: str) -> str:
    return "".join(f"{line}\n" for line in ["#!/bin/bash", f"# {header}", "set -euxo pipefail", *lines])


def _container_command(runtime: NodeRuntime) -> str:
    commands = [*runtime.setup_commands, "exec " + shlex.join(runtime.ray_start)]
    return " && ".join(f"( {c} )" if i < len(commands) - 1 else c for i, c in enumerate(commands))


def cloud_config(ctx: ClusterContext, runtime: NodeRuntime) -> dict[str, Any]:
    common = ctx.spec.common_node_config
    user: dict[str, Any] = {
        "name": common.vm_user,
        "shell": "/bin/bash",
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "groups": ["docker"],
    }
    if common.vm_password_salt_hash:
        user.update({"lock_passwd": False, "hashed_passwd": common.vm_password_salt_hash})
    else:
        user["lock_passwd"] = True
    templates = _templates()
    variables = {"runtime": runtime, "container": CONTAINER_NAME, "container_command": _container_command(runtime)}
    return {
        "users": ["default", user],
        "write_files": [
            {"path": "/etc/vmray/node.json", "permissions": "0644", "content": runtime.to_json() + "\n"},
            {
                "path": "/etc/vmray/initialize.sh",
                "permissions": "0755",
                "content": _script(runtime.initialization_commands, "initialization_commands, on the VM"),
            },
            {
                "path": "/usr/local/bin/vmray-ray-node",
                "permissions": "0755",
                "content": templates.get_template("ray-node.sh.j2").render(variables),
            },
            {
                "path": "/etc/systemd/system/vmray-ray.service",
                "permissions": "0644",
                "content": templates.get_template("vmray-ray.service.j2").render(variables),
            },
        ],
        "runcmd": [
            ["/etc/vmray/initialize.sh"],
            ["docker", "pull", runtime.image],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "vmray-ray.service"],
        ],
    }


def user_data(ctx: ClusterContext, runtime: NodeRuntime) -> str:
    return "#cloud-config\n" + yaml.dump(cloud_config(ctx, runtime), Dumper=_Dumper, sort_keys=False, width=1000)
