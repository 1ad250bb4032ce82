"""The cloud-config of a node: the login user, the Ray node service and the commands, as YAML made
from data (user input never goes into YAML or shell by string pasting)."""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any

import jinja2
import yaml

from vmray_operator.render import tls
from vmray_operator.render.autoscaler import config_sync_program, config_text, token_env
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import (
    API_SERVER_CA,
    AUTOSCALER_CONFIG,
    AUTOSCALER_CONFIG_SYNC,
    GUEST_DIR,
    NODE_FILE,
    TLS_FETCH,
    TOKEN_ENV,
)
from vmray_operator.render.names import ROLE_HEAD
from vmray_operator.render.ray_node import CONTAINER_NAME, NodeRuntime
from vmray_operator.render.registry import DOCKER_CONFIG_PATH, docker_config


class _Dumper(yaml.CSafeDumper):
    """Writes multi-line strings as literal blocks, so the user-data reads like the files it writes.
    libyaml's emitter: rendering runs on every reconcile, and the pure-Python one is ten times slower."""


def _represent_str(dumper: yaml.CSafeDumper, value: str) -> yaml.ScalarNode:
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
    """The setup commands in order, each in a subshell; the companions in the background; then Ray."""
    steps = [f"( {c} )" for c in runtime.setup_commands]
    steps += [f"( {shlex.join(c)} & )" for c in runtime.companions]
    return " && ".join([*steps, "exec " + shlex.join(runtime.ray_start)])


def _autoscaler_files(ctx: ClusterContext) -> list[dict[str, str]]:
    return [
        {"path": AUTOSCALER_CONFIG, "permissions": "0644", "content": config_text(ctx)},
        {"path": AUTOSCALER_CONFIG_SYNC, "permissions": "0644", "content": config_sync_program()},
    ]


def _api_access_files(ctx: ClusterContext, credentials: bool) -> list[dict[str, str]]:
    """What a node needs to reach the Supervisor API as the cluster's ServiceAccount: the token (left out of
    the rollout basis with credentials=False) and the API server's CA."""
    files = [{"path": TOKEN_ENV, "permissions": "0600", "content": token_env(ctx)}] if credentials else []
    if ctx.api_server_ca_cert:
        files.append({"path": API_SERVER_CA, "permissions": "0644", "content": ctx.api_server_ca_cert})
    return files


def _node_files(ctx: ClusterContext, runtime: NodeRuntime, live_files: bool) -> list[dict[str, str]]:
    """The node's own files; live_files: with those that change without replacing the VM (the head
    autoscaler's limits, the cluster's token), which the rollout basis leaves out."""
    files: list[dict[str, str]] = []
    head_autoscaler = runtime.role == ROLE_HEAD and ctx.runs_autoscaler
    if head_autoscaler and live_files:
        files += _autoscaler_files(ctx)
    if ctx.node_uses_token(runtime.role):
        files += _api_access_files(ctx, credentials=live_files)
    if ctx.spec.enable_tls:
        files.append({"path": TLS_FETCH, "permissions": "0644", "content": tls.fetch_program()})
    return files


def cloud_config(ctx: ClusterContext, runtime: NodeRuntime, live_files: bool = True) -> dict[str, Any]:
    common = ctx.spec.common_node_config
    user: dict[str, Any] = {
        "name": common.vm_user,
        "shell": "/bin/bash",
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "groups": ["docker"],
    }
    if ctx.vm_password_hash:
        user.update({"lock_passwd": False, "hashed_passwd": ctx.vm_password_hash})
    else:
        user["lock_passwd"] = True
    templates = _templates()
    variables = {
        "runtime": runtime,
        "container": CONTAINER_NAME,
        "container_command": _container_command(runtime),
        "guest_dir": GUEST_DIR,
    }
    config: dict[str, Any] = {
        "users": ["default", user],
        "write_files": [
            {"path": NODE_FILE, "permissions": "0644", "content": runtime.to_json() + "\n"},
            *_node_files(ctx, runtime, live_files),
            *_registry_files(ctx),
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
            *_mount_commands(ctx),
            ["/etc/vmray/initialize.sh"],
            ["docker", "pull", runtime.image],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "vmray-ray.service"],
        ],
    }
    storage = ctx.spec.common_node_config.shared_storage
    if storage is not None:
        options = storage.mount_options.split(",") if storage.mount_options else []
        if "nofail" not in options:
            options.append("nofail")  # a VM boots even while the file server is away
        config["packages"] = ["nfs-common"]
        config["mounts"] = [
            [f"{storage.nfs_server}:{storage.export_path}", storage.mount_path, "nfs", ",".join(options), "0", "0"]
        ]
    return config


def _registry_files(ctx: ClusterContext) -> list[dict[str, str]]:
    if ctx.registry_credentials is None:
        return []
    content = docker_config(ctx.registry_credentials, ctx.spec.ray_docker_image)
    return [{"path": DOCKER_CONFIG_PATH, "permissions": "0600", "content": content}]


def _mount_commands(ctx: ClusterContext) -> list[list[str]]:
    """cloud-init writes fstab before it installs packages: the NFS share is mounted again once the NFS
    client is there, before Ray starts (the Ray service also requires the mount)."""
    storage = ctx.spec.common_node_config.shared_storage
    if storage is None:
        return []
    return [["mkdir", "-p", storage.mount_path], ["mount", storage.mount_path]]


def user_data(ctx: ClusterContext, runtime: NodeRuntime, live_files: bool = True) -> str:
    config = cloud_config(ctx, runtime, live_files)
    return "#cloud-config\n" + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=1000)


def rollout_basis(ctx: ClusterContext, runtime: NodeRuntime) -> str:
    """What decides whether a VM runs the current spec: its user-data without the head autoscaler's config
    and the cluster's token. Scaling limits change often and must not replace the head (that restarts the
    Ray cluster)."""
    return user_data(ctx, runtime, live_files=False)
