"""Everything that should exist for one cluster, given what is known now."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmray_operator.render import identity, names
from vmray_operator.render.autoscaler import config_map
from vmray_operator.render.cloudinit import rollout_basis, user_data
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.objects import Body, bootstrap_secret, head_service, virtual_machine
from vmray_operator.render.ray_node import node_runtime


@dataclass(frozen=True)
class DesiredState:
    head_vm: Body | None  # None while the head waits for the cluster's token
    service: Body
    secrets: dict[str, Body]  # cloud-init Secrets by name
    wanted_workers: dict[str, str] = field(default_factory=dict)  # VM name -> node type, always known
    workers: dict[str, Body] = field(default_factory=dict)  # rendered VMs; empty until the head has an address
    identity: list[Body] = field(default_factory=list)  # the cluster's ServiceAccount, Role and RoleBinding
    token_secret: Body | None = None  # the ServiceAccount's token Secret, when the cluster has an identity
    autoscaler_config: Body | None = None  # the ConfigMap the head's autoscaler keeps reading


def desired_state(ctx: ClusterContext) -> DesiredState:
    """Workers need the head's address in their cloud-init, so they are only wanted once the head's
    load balancer has one; that comes long before the head VM has booted. A node that uses the cluster's
    token (the head's autoscaler; every node with TLS) is only rendered once the token is issued."""
    spec = ctx.spec
    head_type = spec.head_node.node_type
    head_name = names.head_vm_name(ctx.name, ctx.nounce)
    secrets: dict[str, Body] = {}
    head_vm: Body | None = None
    token_ready = ctx.cluster_token is not None
    if token_ready or not ctx.node_uses_token(names.ROLE_HEAD):
        runtime = node_runtime(ctx, names.ROLE_HEAD, head_type)
        head_secret = bootstrap_secret(ctx, names.ROLE_HEAD, head_type, user_data(ctx, runtime))
        secrets[head_secret["metadata"]["name"]] = head_secret
        head_vm = virtual_machine(ctx, head_name, names.ROLE_HEAD, head_type, head_secret, rollout_basis(ctx, runtime))
    wanted = {
        vm_name: node_type
        for vm_name, node_type in spec.autoscaler_desired_workers.items()
        # the API server refuses unknown types; an object stored before a type was removed is skipped
        if node_type in spec.common_node_config.available_node_types
    }
    workers: dict[str, Body] = {}
    if ctx.head_address and (token_ready or not ctx.node_uses_token(names.ROLE_WORKER)):
        worker_secrets: dict[str, tuple[Body, str]] = {}  # by node type: the Secret and its rollout basis
        for vm_name, node_type in sorted(wanted.items()):
            if node_type not in worker_secrets:
                worker = node_runtime(ctx, names.ROLE_WORKER, node_type)
                secret = bootstrap_secret(ctx, names.ROLE_WORKER, node_type, user_data(ctx, worker))
                worker_secrets[node_type] = (secret, rollout_basis(ctx, worker))
            secret, basis = worker_secrets[node_type]
            workers[vm_name] = virtual_machine(ctx, vm_name, names.ROLE_WORKER, node_type, secret, basis)
        secrets.update({s["metadata"]["name"]: s for s, _ in worker_secrets.values()})
    has_identity = ctx.has_identity
    runs_autoscaler = ctx.runs_autoscaler
    return DesiredState(
        head_vm=head_vm,
        service=head_service(ctx, head_name),
        secrets=secrets,
        wanted_workers=wanted,
        workers=workers,
        identity=[identity.service_account(ctx), identity.role(ctx), identity.role_binding(ctx)]
        if has_identity
        else [],
        token_secret=identity.token_secret(ctx) if has_identity else None,
        autoscaler_config=config_map(ctx) if runs_autoscaler else None,
    )
