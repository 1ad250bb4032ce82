"""The cluster's identity: a ServiceAccount per cluster, a Role that reaches only this cluster's own objects,
and a token Secret. The head's autoscaler uses it to scale the cluster; with TLS, every node uses it to read
its own certificate. (Ray runs any node's code on any other node, so the nodes of one cluster are one trust
domain; the token reaches nothing of another cluster.)

The token is a ServiceAccount token Secret, not a TokenRequest: cloud-init hands it to the head once, at
first boot, so a token that expires would stop the autoscaler silently some day. This token lives exactly as
long as the ServiceAccount, which the cluster owns: it dies with the cluster."""

from __future__ import annotations

from typing import Any

from vmray_operator.api import contract
from vmray_operator.api.contract import Body
from vmray_operator.render import names
from vmray_operator.render.autoscaler import config_map_name
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.names import ClusterSecret
from vmray_operator.render.objects import metadata

SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"


def service_account_name(cluster: str) -> str:
    return f"{cluster}-autoscaler"


def _labels(ctx: ClusterContext) -> dict[str, str]:
    return names.labels(ctx.name, names.ROLE_AUTOSCALER)


def service_account(ctx: ClusterContext) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(ctx, service_account_name(ctx.name), _labels(ctx)),
        "automountServiceAccountToken": False,
    }


def role(ctx: ClusterContext) -> Body:
    """What Ray's vSphere provider does with the API: read and patch its own VMRayCluster, read the head's
    VirtualMachineService; the head's config sync reads the autoscaler's ConfigMap; with TLS, nodes read the
    certificates Secret (never the CA's), and with token authentication Ray's token. Nothing else, and nothing of
    any other cluster."""
    rules: list[dict[str, Any]] = []
    if ctx.runs_autoscaler:
        rules += _autoscaler_rules(ctx)
    # What each node fetches at boot: its certificate, and Ray's token (never the CA's key, never the client's).
    fetched = [ClusterSecret.CERTIFICATES.of(ctx.name)] if ctx.spec.enable_tls else []
    fetched += [ClusterSecret.RAY_TOKEN.of(ctx.name)] if ctx.spec.enable_token_auth else []
    if fetched:
        rules.append({"apiGroups": [""], "resources": ["secrets"], "resourceNames": fetched, "verbs": ["get"]})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(ctx, service_account_name(ctx.name), _labels(ctx)),
        "rules": rules,
    }


def _autoscaler_rules(ctx: ClusterContext) -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [contract.GROUP],
            "resources": [contract.PLURAL],
            "resourceNames": [ctx.name],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [contract.VMOP_GROUP],
            "resources": ["virtualmachineservices"],
            "resourceNames": [names.head_vm_name(ctx.name, ctx.nounce)],
            "verbs": ["get"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [config_map_name(ctx.name)],
            "verbs": ["get"],
        },
    ]


def role_binding(ctx: ClusterContext) -> Body:
    name = service_account_name(ctx.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(ctx, name, _labels(ctx)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}],
    }


def token_secret(ctx: ClusterContext) -> Body:
    """Kubernetes fills data.token once the ServiceAccount exists."""
    annotations = {"kubernetes.io/service-account.name": service_account_name(ctx.name)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SERVICE_ACCOUNT_TOKEN_TYPE,
        "metadata": metadata(ctx, ClusterSecret.SA_TOKEN.of(ctx.name), _labels(ctx), annotations=annotations),
    }
