"""The configuration of Ray's own autoscaler on the head (provider `vsphere`), from the cluster's spec.

Ray's vSphere provider drives this very VMRayCluster: it adds and removes names in
spec.autoscaler_desired_workers and reads the status. Workers start Ray from their cloud-init, so the
autoscaler never logs into a node (disable_node_updaters), and the operator, not the autoscaler, replaces
VMs whose configuration changed (disable_launch_config_check)."""

from __future__ import annotations

from typing import Any

import yaml

from vmray_operator.api.contract import Body
from vmray_operator.render import names
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.guest_paths import (
    API_SERVER_CA,
    AUTOSCALER_CONFIG,
    LIVE_AUTOSCALER_CONFIG,
)
from vmray_operator.render.guest_programs import agent_command
from vmray_operator.render.objects import metadata
from vmray_operator.render.resources import ray_resources

CONFIG_KEY = "autoscaler.yaml"  # the key the head's config sync reads (guest/node_agent.py)


def autoscaler_config(ctx: ClusterContext) -> dict[str, Any]:
    spec = ctx.spec
    common = spec.common_node_config
    head_type = spec.head_node.node_type
    node_types: dict[str, Any] = {}
    for name, node_type in sorted(common.available_node_types.items()):
        entry: dict[str, Any] = {"node_config": {"vm_class": node_type.vm_class}, "resources": ray_resources(node_type)}
        # a closed tier, or a suspended cluster, has no workers, for Ray too
        if name == head_type or name in ctx.closed_types or ctx.suspended:
            entry.update(min_workers=0, max_workers=0)
        else:
            entry.update(min_workers=node_type.min_workers, max_workers=node_type.max_workers)
        node_types[name] = entry
    # Ray's provider puts https:// before api_server, and without a ca_cert it would not verify the server
    vsphere = {"namespace": ctx.namespace, "api_server": ctx.api_server.authority, "ca_cert": API_SERVER_CA}
    return {
        "cluster_name": ctx.name,
        "max_workers": common.max_workers,
        "upscaling_speed": spec.autoscaling.upscaling_speed,
        "idle_timeout_minutes": common.idle_timeout_minutes,
        "provider": {
            "type": "vsphere",
            "vsphere_config": vsphere,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "auth": {"ssh_user": common.vm_user},
        "available_node_types": node_types,
        "head_node_type": head_type,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def token_env(ctx: ClusterContext) -> str:
    """The environment file of a node's Ray container: the token Ray's vSphere provider (and the TLS fetch)
    reads."""
    if ctx.cluster_token is None:
        raise ValueError("the cluster's token is not issued yet")
    return f"SVC_ACCOUNT_TOKEN={ctx.cluster_token}\n"


def config_map_name(cluster: str) -> str:
    return f"{cluster}-autoscaler-config"


def config_text(ctx: ClusterContext) -> str:
    return yaml.dump(autoscaler_config(ctx), Dumper=yaml.CSafeDumper, sort_keys=True)


def config_map(ctx: ClusterContext) -> Body:
    """The autoscaler's config as the head keeps reading it: changed limits reach Ray's autoscaler without
    replacing the head."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ctx, config_map_name(ctx.name), names.labels(ctx.name, names.ROLE_AUTOSCALER)),
        "data": {CONFIG_KEY: config_text(ctx)},
    }


def config_sync_command(ctx: ClusterContext) -> list[str]:
    """The program that keeps the head's config equal to the ConfigMap (beside Ray on the head)."""
    arguments = [f"--initial={AUTOSCALER_CONFIG}", f"--target={LIVE_AUTOSCALER_CONFIG}"]
    return agent_command(ctx, "sync-autoscaler-config", [*arguments, f"--config-map={config_map_name(ctx.name)}"])
