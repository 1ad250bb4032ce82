"""VM Operator objects and Secrets of one cluster, as the API server should hold them."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from vmray_operator.api import contract
from vmray_operator.api.contract import Body, vmop_api_version
from vmray_operator.render import names
from vmray_operator.render.context import RAY_CLIENT_PORT, RAY_DASHBOARD_PORT, ClusterContext

USER_DATA_KEY = "user-data"


def metadata(ctx: ClusterContext, name: str, labels: dict[str, str], **extra: Any) -> Body:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": labels,
        "ownerReferences": [ctx.owner_reference()],
        **extra,
    }


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def bootstrap_secret(ctx: ClusterContext, role: str, node_type: str, user_data: str) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(
            ctx,
            names.bootstrap_secret_name(ctx.name, role, node_type),
            names.labels(ctx.name, role, node_type),
        ),
        "data": {USER_DATA_KEY: base64.b64encode(user_data.encode()).decode()},
    }


def rollout_hash(spec: Body, bootstrap_basis: str) -> str:
    """What decides whether a VM runs the current spec: every field of its spec that VM Operator cannot change
    in place (all but the power state and how to power off), with its bootstrap by content rather than by the name
    of the Secret that holds it."""
    fixed = {k: v for k, v in spec.items() if k not in ("powerState", "powerOffMode", "bootstrap")}
    return content_hash(json.dumps({"spec": fixed, "bootstrap": bootstrap_basis}, sort_keys=True))


def virtual_machine(
    ctx: ClusterContext, name: str, role: str, node_type: str, secret: Body, rollout_basis: str
) -> Body:
    """rollout_basis: the bootstrap text that counts for outdatedness (see rollout_hash)."""
    common = ctx.spec.common_node_config
    spec: Body = {
        "className": common.available_node_types[node_type].vm_class,
        "imageName": common.vm_image,
        "storageClass": common.storage_class,
        # a suspended cluster's head is off (its disk stays); powerState is no part of the rollout hash
        "powerState": "PoweredOff" if ctx.suspended and role == names.ROLE_HEAD else "PoweredOn",
        # TrySoft: the guest gets a shutdown first, so the Ray container stops with SIGTERM and drains.
        "powerOffMode": "TrySoft",
        "bootstrap": {"cloudInit": {"rawCloudConfig": {"name": secret["metadata"]["name"], "key": USER_DATA_KEY}}},
    }
    if common.network:
        spec["network"] = common.network
    return {
        "apiVersion": vmop_api_version(ctx.vmop_api_version),
        "kind": "VirtualMachine",
        "metadata": metadata(
            ctx,
            name,
            names.labels(ctx.name, role, node_type),
            annotations={
                contract.ANNOTATION_ROLLOUT_HASH: rollout_hash(spec, rollout_basis),
                contract.ANNOTATION_RAY_IMAGE: ctx.spec.ray_docker_image,
            },
        ),
        "spec": spec,
    }


def head_service(ctx: ClusterContext, head_vm_name: str) -> Body:
    """LoadBalancer in front of the head: GCS, dashboard and Ray client. Named like the head VM, which
    is where Ray's autoscaler looks for it."""
    port = ctx.spec.head_node.port
    return {
        "apiVersion": vmop_api_version(ctx.vmop_api_version),
        "kind": "VirtualMachineService",
        "metadata": metadata(ctx, head_vm_name, names.labels(ctx.name, names.ROLE_HEAD)),
        "spec": {
            "type": "LoadBalancer",
            "selector": names.head_selector(ctx.name),
            "ports": [
                {"name": "gcs", "protocol": "TCP", "port": port, "targetPort": port},
                {"name": "dashboard", "protocol": "TCP", "port": RAY_DASHBOARD_PORT, "targetPort": RAY_DASHBOARD_PORT},
                {"name": "client", "protocol": "TCP", "port": RAY_CLIENT_PORT, "targetPort": RAY_CLIENT_PORT},
            ],
        },
    }
