"""How a node runs Ray: the container, the `ray start` command and its environment, the commands before it,
as data. cloud-init writes it as the scripts systemd runs (render/cloudinit.py), and the local simulator runs
those same scripts."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from vmray_operator.api.contract import RAY_METRICS_EXPORT_PORT
from vmray_operator.api.models import NodeType
from vmray_operator.render import credentials, tls
from vmray_operator.render.autoscaler import config_sync_command
from vmray_operator.render.context import RAY_CLIENT_PORT, RAY_DASHBOARD_PORT, ClusterContext
from vmray_operator.render.guest_paths import AUTOSCALER_CONFIG, LIVE_AUTOSCALER_CONFIG, TOKEN_ENV
from vmray_operator.render.monitoring import dashboard_env
from vmray_operator.render.names import ROLE_HEAD
from vmray_operator.render.ray_auth import ray_auth_env
from vmray_operator.render.resources import gpus, ray_resources

CONTAINER_NAME = "vmray-ray"
RAY_DRAIN_SECONDS = 30  # how long `ray start --block` drains on SIGTERM unless told otherwise (Ray 2.60)
# What the node's stop may take beyond Ray's drain: Ray's teardown, then systemd's and the guest's shutdown.
CONTAINER_STOP_MARGIN = 30
UNIT_STOP_MARGIN = 60


def drain_seconds(node_type: NodeType) -> int:
    """How long Ray drains a node of the type on a soft power-off. A scheduled tier's workers drain for the
    schedule's lead time (less the margins of the stop, so the VM is off by the window's end): running tasks
    finish meanwhile, and Ray places no new work on them."""
    schedule = node_type.schedule
    if schedule is None or schedule.drain_minutes_before_end == 0:
        return RAY_DRAIN_SECONDS
    return max(RAY_DRAIN_SECONDS, schedule.drain_minutes_before_end * 60 - UNIT_STOP_MARGIN)


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
    drain_seconds: int = RAY_DRAIN_SECONDS  # Ray's drain on SIGTERM; the container's and unit's stop allow for it

    @property
    def container_stop_seconds(self) -> int:
        return self.drain_seconds + CONTAINER_STOP_MARGIN

    @property
    def unit_stop_seconds(self) -> int:
        return self.drain_seconds + UNIT_STOP_MARGIN


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


@dataclass(frozen=True)
class _RoleParts:
    """What differs between the head and a worker: how Ray starts, the user's commands, the background programs."""

    start: list[str]
    setup: list[str]
    head_host: str | None
    companions: list[list[str]]


def _head_parts(ctx: ClusterContext) -> _RoleParts:
    spec = ctx.spec
    start = [
        "ray",
        "start",
        "--head",
        f"--port={spec.head_node.port}",
        "--dashboard-host=0.0.0.0",
        f"--dashboard-port={RAY_DASHBOARD_PORT}",
        f"--ray-client-server-port={RAY_CLIENT_PORT}",
    ]
    setup = [
        *spec.common_node_config.setup_commands,
        *spec.head_node.setup_commands,
        *spec.head_node.head_setup_commands,
    ]
    companions: list[list[str]] = []
    if ctx.runs_autoscaler:
        # Ray's autoscaler reads a copy that the config sync keeps equal to the cluster's ConfigMap.
        setup.insert(0, f"mkdir -p /tmp/ray && cp {AUTOSCALER_CONFIG} {LIVE_AUTOSCALER_CONFIG}")
        companions.append(config_sync_command(ctx))
        start.append(f"--autoscaling-config={LIVE_AUTOSCALER_CONFIG}")
    return _RoleParts(start, setup, None, companions)


def _worker_parts(ctx: ClusterContext) -> _RoleParts:
    spec = ctx.spec
    start = ["ray", "start", f"--address={ctx.head_address}:{spec.head_node.port}"]
    setup = [*spec.common_node_config.setup_commands, *spec.worker_node.setup_commands]
    return _RoleParts(start, setup, ctx.head_address, [])


def _environment(ctx: ClusterContext, role: str, node_type_name: str, drain: int) -> dict[str, str]:
    # No usage reports: Supervisor networks are often closed, and a cluster should not phone home.
    env = {"RAY_NODE_TYPE_NAME": node_type_name, "RAY_USAGE_STATS_ENABLED": "0", **ray_auth_env(ctx)}
    if drain != RAY_DRAIN_SECONDS:
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = str(drain)
    if role == ROLE_HEAD and ctx.runs_autoscaler:
        env["VMSERVICE_CRD_VER"] = ctx.vmop_api_version  # the version Ray's provider reads the head service at
    if role == ROLE_HEAD:
        env.update(dashboard_env(ctx))
    if ctx.spec.enable_tls:
        env.update(tls.ray_tls_env())
    return env


def node_runtime(ctx: ClusterContext, role: str, node_type_name: str) -> NodeRuntime:
    spec = ctx.spec
    node_type = spec.common_node_config.available_node_types[node_type_name]
    parts = _head_parts(ctx) if role == ROLE_HEAD else _worker_parts(ctx)
    setup = parts.setup
    if ctx.fetches_at_boot:  # Ray cannot start without the node's certificate and Ray's token
        setup.insert(0, shlex.join(credentials.fetch_command(ctx)))
    storage = spec.common_node_config.shared_storage
    drain = drain_seconds(node_type)
    return NodeRuntime(
        role=role,
        cluster=ctx.name,
        node_type=node_type_name,
        image=spec.ray_docker_image,
        # a fixed metrics port on every node: what the operator publishes for Prometheus (render/monitoring.py)
        ray_start=[
            *parts.start,
            f"--metrics-export-port={RAY_METRICS_EXPORT_PORT}",
            *resource_arguments(node_type),
            "--block",
        ],
        env=_environment(ctx, role, node_type_name, drain),
        head_host=parts.head_host,
        gcs_port=spec.head_node.port,
        setup_commands=setup,
        initialization_commands=list(spec.common_node_config.initialization_commands),
        num_gpus=gpus(node_type),
        env_files=[TOKEN_ENV] if ctx.node_uses_token(role) else [],
        volumes=[storage.mount_path] if storage else [],
        companions=parts.companions,
        drain_seconds=drain,
    )
