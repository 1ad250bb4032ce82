"""Names, labels and annotations of everything the operator creates."""

from __future__ import annotations

import hashlib
import re

LABEL_CLUSTER = "vmray.broadcom.com/cluster"
LABEL_ROLE = "vmray.broadcom.com/role"
LABEL_NODE_TYPE = "vmray.broadcom.com/node-type"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "vmray-operator"
HEAD_NOUNCE_LABEL = "vmray.kubernetes.io/head-nounce"  # read by Ray's vSphere autoscaler
CREATED_BY_LABEL = "vmray.io/created-by"  # "ray-cli" on clusters made by `ray up`
FINALIZER = "vmray.broadcom.com/finalizer"
ANNOTATION_BOOTSTRAP_HASH = "vmray.broadcom.com/bootstrap-hash"
ANNOTATION_DRAIN_STARTED = "vmray.broadcom.com/drain-started"

ROLE_HEAD = "head"
ROLE_WORKER = "worker"
ROLE_AUTOSCALER = "autoscaler"  # the head autoscaler's ServiceAccount, Role, RoleBinding and token
ROLE_TLS = "tls"  # the cluster's Ray CA and its nodes' certificates
SUFFIX_LENGTH = 8
SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def head_vm_name(cluster: str, nounce: str) -> str:
    return f"{cluster}-h-{nounce}"


def worker_vm_name(cluster: str, suffix: str) -> str:
    return f"{cluster}-w-{suffix}"


def bootstrap_secret_name(cluster: str, role: str, node_type: str) -> str:
    """One cloud-init Secret per role and node type; the digest keeps distinct type names apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", node_type.lower()).strip("-")[:20] or "type"
    digest = hashlib.sha256(node_type.encode()).hexdigest()[:6]
    return f"{cluster}-{role}-{slug}-{digest}"


def labels(cluster: str, role: str | None = None, node_type: str | None = None) -> dict[str, str]:
    result = {LABEL_CLUSTER: cluster, LABEL_MANAGED_BY: MANAGER}
    if role:
        result[LABEL_ROLE] = role
    if node_type:
        result[LABEL_NODE_TYPE] = node_type
    return result


def head_selector(cluster: str) -> dict[str, str]:
    """What the head's VirtualMachineService selects."""
    return {LABEL_CLUSTER: cluster, LABEL_ROLE: ROLE_HEAD}
