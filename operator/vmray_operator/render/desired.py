"""Everything that should exist for one cluster, given what is known now."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmray_operator.api.contract import Body
from vmray_operator.render import identity, names
from vmray_operator.render.autoscaler import config_map
from vmray_operator.render.budget import user_data_over_budget
from vmray_operator.render.cloudinit import rollout_basis, user_data
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.monitoring import metrics_service
from vmray_operator.render.objects import bootstrap_secret, head_service, virtual_machine
from vmray_operator.render.ray_auth import auth_secret
from vmray_operator.render.ray_node import node_runtime


@dataclass(frozen=True)
class DesiredState:
    head_vm: Body | None  # None while the head waits for the cluster's token and the API server's CA
    service: Body
    secrets: dict[str, Body]  # cloud-init Secrets by name
    wanted_workers: dict[str, str] = field(default_factory=dict)  # VM name -> node type, always known
    workers: dict[str, Body] = field(default_factory=dict)  # rendered VMs; empty until the head has an address
    identity: list[Body] = field(default_factory=list)  # the cluster's ServiceAccount, Role and RoleBinding
    token_secret: Body | None = None  # the ServiceAccount's token Secret, when the cluster has an identity
    autoscaler_config: Body | None = None  # the ConfigMap the head's autoscaler keeps reading
    ray_token_secret: Body | None = None  # the cluster's Ray token, to be made (only while it is missing)
    oversized: list[str] = field(default_factory=list)  # nodes whose user-data does not fit a Secret, and why
    withheld: dict[str, str] = field(default_factory=dict)  # desired workers that may not exist now, and why
    metrics_service: Body | None = None  # names the nodes' Ray metrics for Prometheus (reconcile/metrics_targets.py)


@dataclass(frozen=True)
class _NodeBoot:
    """What the VMs of one role and node type boot from."""

    secret: Body
    rollout_basis: str
    oversized: str | None  # why the user-data does not fit its Secret, or None


def _node_boot(ctx: ClusterContext, role: str, node_type: str) -> _NodeBoot:
    runtime = node_runtime(ctx, role, node_type)
    text = user_data(ctx, runtime)
    return _NodeBoot(
        bootstrap_secret(ctx, role, node_type, text),
        rollout_basis(ctx, runtime),
        user_data_over_budget(text, role, node_type, ctx.spec),
    )


def _api_access_ready(ctx: ClusterContext, role: str) -> bool:
    """A node that uses the cluster's token (the head's autoscaler; every node that fetches at boot) is only
    rendered once the token is issued and a CA to verify the API server with is known (the cluster's root CA
    arrives in the token's Secret)."""
    return not ctx.node_uses_token(role) or (ctx.cluster_token is not None and ctx.api_server_trusted_ca is not None)


def _wanted_workers(ctx: ClusterContext) -> dict[str, str]:
    """The desired workers that may exist now: none while the cluster is suspended, none of a closed tier."""
    if ctx.suspended:
        return {}
    types = ctx.spec.common_node_config.available_node_types
    # the API server refuses unknown types; an object stored before a type was removed is skipped
    return {
        vm: node_type
        for vm, node_type in ctx.spec.autoscaler_desired_workers.items()
        if node_type in types and node_type not in ctx.closed_types
    }


def _withheld(ctx: ClusterContext) -> dict[str, str]:
    why = {name: "the cluster is suspended" for name in ctx.spec.autoscaler_desired_workers} if ctx.suspended else {}
    for name, node_type in ctx.spec.autoscaler_desired_workers.items():
        if node_type in ctx.closed_types and name not in why:
            why[name] = f"the schedule of node type {node_type} keeps its workers away now"
    return why


def desired_state(ctx: ClusterContext) -> DesiredState:
    """Workers need the head's address in their cloud-init, so they are only wanted once the head's load balancer
    has one; that comes long before the head VM has booted."""
    head_type = ctx.spec.head_node.node_type
    head_name = names.head_vm_name(ctx.name, ctx.nounce)
    boots: list[_NodeBoot] = []
    head_vm: Body | None = None
    if _api_access_ready(ctx, names.ROLE_HEAD):
        head = _node_boot(ctx, names.ROLE_HEAD, head_type)
        boots.append(head)
        head_vm = virtual_machine(ctx, head_name, names.ROLE_HEAD, head_type, head.secret, head.rollout_basis)
    wanted = _wanted_workers(ctx)
    workers: dict[str, Body] = {}
    if ctx.head_address and _api_access_ready(ctx, names.ROLE_WORKER):
        by_type: dict[str, _NodeBoot] = {}
        for vm_name, node_type in sorted(wanted.items()):
            boot = by_type.get(node_type) or by_type.setdefault(
                node_type, _node_boot(ctx, names.ROLE_WORKER, node_type)
            )
            workers[vm_name] = virtual_machine(
                ctx, vm_name, names.ROLE_WORKER, node_type, boot.secret, boot.rollout_basis
            )
        boots += by_type.values()
    has_identity = ctx.has_identity
    return DesiredState(
        head_vm=head_vm,
        service=head_service(ctx, head_name),
        secrets={boot.secret["metadata"]["name"]: boot.secret for boot in boots},
        wanted_workers=wanted,
        workers=workers,
        identity=[identity.service_account(ctx), identity.role(ctx), identity.role_binding(ctx)]
        if has_identity
        else [],
        token_secret=identity.token_secret(ctx) if has_identity else None,
        autoscaler_config=config_map(ctx) if ctx.runs_autoscaler else None,
        ray_token_secret=auth_secret(ctx, ctx.new_ray_token)
        if ctx.spec.enable_token_auth and ctx.new_ray_token
        else None,
        oversized=[boot.oversized for boot in boots if boot.oversized],
        withheld=_withheld(ctx),
        metrics_service=metrics_service(ctx),
    )
