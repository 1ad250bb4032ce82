"""The cloud-config of a node: the login user, the Ray node service and the scripts of the user's commands,
as YAML made from data (user input never goes into YAML or shell by string pasting)."""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any

import yaml

from vmray_operator.render.autoscaler import config_text, token_env
from vmray_operator.render.command_scripts import INITIALIZATION, SETUP, command_script
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import (
    API_SERVER_CA,
    AUTOSCALER_CONFIG,
    BOOTSTRAP_CONDITION_KEY,
    GUEST_DIR,
    INITIALIZATION_OUTCOME,
    INITIALIZE_SCRIPT,
    NODE_AGENT,
    NODE_SCRIPT,
    NODE_UNIT,
    NODE_UNIT_FILE,
    SETUP_OUTCOME,
    SETUP_SCRIPT,
    STATE_DIR,
    TOKEN_ENV,
)
from vmray_operator.render.guest_programs import agent_program
from vmray_operator.render.names import ROLE_HEAD
from vmray_operator.render.ray_node import CONTAINER_NAME, NodeRuntime
from vmray_operator.render.registry import DOCKER_CONFIG_PATH, docker_config
from vmray_operator.render.shell_templates import templates


class _Dumper(yaml.CSafeDumper):
    """Writes multi-line strings as literal blocks, so the user-data reads like the files it writes.
    libyaml's emitter: rendering runs on every reconcile, and the pure-Python one is ten times slower."""


def _represent_str(dumper: yaml.CSafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _container_command(runtime: NodeRuntime) -> str:
    """The setup script; the companions in the background; then Ray in the foreground."""
    companions = [f"( {shlex.join(c)} & )" for c in runtime.companions]
    return " && ".join([SETUP_SCRIPT, *companions, "exec " + shlex.join(runtime.ray_start)])


def _autoscaler_files(ctx: ClusterContext) -> list[dict[str, str]]:
    return [
        {"path": AUTOSCALER_CONFIG, "permissions": "0644", "content": config_text(ctx)},
    ]


def _api_access_files(ctx: ClusterContext, credentials: bool) -> list[dict[str, str]]:
    """What a node needs to reach the Supervisor API as the cluster's ServiceAccount: the token (left out of
    the rollout basis with credentials=False) and the CA it verifies the API server with, always."""
    ca = ctx.api_server_trusted_ca
    if ca is None:
        raise ValueError("no CA of the API server is known yet: the node would send its token unverified")
    files = [{"path": TOKEN_ENV, "permissions": "0600", "content": token_env(ctx)}] if credentials else []
    files.append({"path": API_SERVER_CA, "permissions": "0644", "content": ca})
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
        files.append({"path": NODE_AGENT, "permissions": "0644", "content": agent_program()})
    return files


def _login_user(ctx: ClusterContext) -> dict[str, Any]:
    user: dict[str, Any] = {
        "name": ctx.spec.common_node_config.vm_user,
        "shell": "/bin/bash",
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "groups": ["docker"],
    }
    if ctx.vm_password_hash:
        user.update({"lock_passwd": False, "hashed_passwd": ctx.vm_password_hash})
    else:
        user["lock_passwd"] = True
    return user


def _run_files(runtime: NodeRuntime) -> list[dict[str, str]]:
    """The user's commands as scripts, the node script that starts Ray's container and its systemd unit."""
    variables = {
        "runtime": runtime,
        "container": CONTAINER_NAME,
        "container_command": _container_command(runtime),
        "guest_dir": GUEST_DIR,
        "state_dir": STATE_DIR,
        "initialization_outcome": INITIALIZATION_OUTCOME,
        "setup_outcome": SETUP_OUTCOME,
        "condition_key": BOOTSTRAP_CONDITION_KEY,
        "node_script": NODE_SCRIPT,
    }
    rendered = templates()
    return [
        {
            "path": INITIALIZE_SCRIPT,
            "permissions": "0755",
            "content": command_script(INITIALIZATION, runtime.initialization_commands),
        },
        {"path": SETUP_SCRIPT, "permissions": "0755", "content": command_script(SETUP, runtime.setup_commands)},
        {
            "path": NODE_SCRIPT,
            "permissions": "0755",
            "content": rendered.get_template("ray-node.sh.j2").render(variables),
        },
        {
            "path": NODE_UNIT_FILE,
            "permissions": "0644",
            "content": rendered.get_template("vmray-ray.service.j2").render(variables),
        },
    ]


def _shared_storage(ctx: ClusterContext) -> dict[str, Any]:
    storage = ctx.spec.common_node_config.shared_storage
    if storage is None:
        return {}
    options = storage.mount_options.split(",") if storage.mount_options else []
    if "nofail" not in options:
        options.append("nofail")  # a VM boots even while the file server is away
    share = f"{storage.nfs_server}:{storage.export_path}"
    return {"packages": ["nfs-common"], "mounts": [[share, storage.mount_path, "nfs", ",".join(options), "0", "0"]]}


def cloud_config(ctx: ClusterContext, runtime: NodeRuntime, live_files: bool = True) -> dict[str, Any]:
    return {
        "users": ["default", _login_user(ctx)],
        "write_files": [*_node_files(ctx, runtime, live_files), *_registry_files(ctx), *_run_files(runtime)],
        "runcmd": [
            *_mount_commands(ctx),
            [INITIALIZE_SCRIPT],
            ["docker", "pull", runtime.image],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", NODE_UNIT],
        ],
        **_shared_storage(ctx),
    }


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
    """What decides whether a VM runs the current spec: a digest of its cloud-config without the head
    autoscaler's config and the cluster's token. Scaling limits change often and must not replace the head (that
    restarts the Ray cluster). A digest of the config's JSON: the same content as the user-data's YAML, at a
    fraction of the cost of emitting it a second time on every reconcile."""
    return config_digest(cloud_config(ctx, runtime, live_files=False))


def config_digest(config: dict[str, Any]) -> str:
    """A digest of a cloud-config by its content, in its own order."""
    return hashlib.sha256(json.dumps(config, separators=(",", ":")).encode()).hexdigest()
