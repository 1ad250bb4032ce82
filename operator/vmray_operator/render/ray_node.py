"""How a node runs Ray: the container, the `ray start` command and its environment, as data.

The same data is written into the cloud-init twice: as /etc/vmray/node.json (which the local
simulator reads to start the node) and as the shell script systemd runs on a real VM."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass

from vmray_operator.api.models import NodeType
from vmray_operator.render import tls
from vmray_operator.render.autoscaler import config_sync_command
from vmray_operator.render.context import RAY_CLIENT_PORT, RAY_DASHBOARD_PORT, ClusterContext
from vmray_operator.render.guest_paths import AUTOSCALER_CONFIG, LIVE_AUTOSCALER_CONFIG, TOKEN_ENV
from vmray_operator.render.names import ROLE_HEAD
from vmray_operator.render.resources import gpus, ray_resources

CONTAINER_NAME = "vmray-ray"


@dataclass(frozen=True)
class NodeRuntime:
    role: str
    cluster: str
    node_type: str
    image: str
    ray_start: list[str]
    env: dict[str, str]
    head_host: str | None  # workers: where the head's GCS answers
    gcs_port: int
    setup_commands: list[str]
    initialization_commands: list[str]
    num_gpus: int
    env_files: list[str]  # files of KEY=value lines (secrets) the container's environment is read from
    volumes: list[str]  # host paths the container sees at the same path (the shared storage)
    companions: list[list[str]]  # programs started in the background beside Ray, after the setup commands

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def resource_arguments(node_type: NodeType) -> list[str]:
    """`ray start` flags for a node type's resources, in a stable order."""
    args: list[str] = []
    custom: dict[str, float] = {}
    for key, value in ray_resources(node_type).items():
        if key == "CPU":
            args.append(f"--num-cpus={_number(value)}")
        elif key == "GPU":
            args.append(f"--num-gpus={_number(value)}")
        elif key == "memory":
            args.append(f"--memory={int(value)}")
        else:
            custom[key] = value
    if custom:
        args.append("--resources=" + json.dumps(custom, sort_keys=True, separators=(",", ":")))
    if node_type.ray_labels:
        args.append("--labels=" + ",".join(f"{k}={v}" for k, v in sorted(node_type.ray_labels.items())))
    return args


def node_runtime(ctx: ClusterContext, role: str, node_type_name: str) -> NodeRuntime:
    spec = ctx.spec
    node_type = spec.common_node_config.available_node_types[node_type_name]
    port = spec.head_node.port
    if role == ROLE_HEAD:
        start = [
            "ray",
            "start",
            "--head",
            f"--port={port}",
            "--dashboard-host=0.0.0.0",
            f"--dashboard-port={RAY_DASHBOARD_PORT}",
            f"--ray-client-server-port={RAY_CLIENT_PORT}",
        ]
        setup = [
            *spec.common_node_config.setup_commands,
            *spec.head_node.setup_commands,
            *spec.head_node.head_setup_commands,
        ]
        head_host = None
        companions: list[list[str]] = []
        if ctx.runs_autoscaler:
            # Ray's autoscaler reads a copy that the config sync keeps equal to the cluster's ConfigMap.
            setup.insert(0, f"mkdir -p /tmp/ray && cp {AUTOSCALER_CONFIG} {LIVE_AUTOSCALER_CONFIG}")
            companions.append(config_sync_command(ctx))
            start.append(f"--autoscaling-config={LIVE_AUTOSCALER_CONFIG}")
    else:
        start = ["ray", "start", f"--address={ctx.head_address}:{port}"]
        setup = [*spec.common_node_config.setup_commands, *spec.worker_node.setup_commands]
        head_host = ctx.head_address
        companions = []
    start += [*resource_arguments(node_type), "--block"]
    # No usage reports: Supervisor networks are often closed, and a cluster should not phone home.
    env = {"RAY_NODE_TYPE_NAME": node_type_name, "RAY_USAGE_STATS_ENABLED": "0"}
    env_files: list[str] = []
    if role == ROLE_HEAD and ctx.runs_autoscaler:
        env["VMSERVICE_CRD_VER"] = ctx.vmop_api_version  # the version Ray's provider reads the head service at
    if ctx.node_uses_token(role):
        env_files.append(TOKEN_ENV)
    if ctx.spec.enable_tls:
        env.update(tls.ray_tls_env())
        setup.insert(0, shlex.join(tls.fetch_command(ctx)))  # Ray cannot start without the node's certificate
    return NodeRuntime(
        role=role,
        cluster=ctx.name,
        node_type=node_type_name,
        image=spec.ray_docker_image,
        ray_start=start,
        env=env,
        head_host=head_host,
        gcs_port=port,
        setup_commands=setup,
        initialization_commands=list(spec.common_node_config.initialization_commands),
        num_gpus=gpus(node_type),
        env_files=env_files,
        volumes=[spec.common_node_config.shared_storage.mount_path] if spec.common_node_config.shared_storage else [],
        companions=companions,
    )
