"""Names and labels of everything the operator creates (the label keys themselves are the API contract's)."""

from __future__ import annotations

import enum
import hashlib

from vmray_operator.api.contract import LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_NODE_TYPE, LABEL_ROLE, MANAGER

ROLE_HEAD = "head"
ROLE_WORKER = "worker"
ROLE_AUTOSCALER = "autoscaler"  # the head autoscaler's ServiceAccount, Role, RoleBinding and token
ROLE_TLS = "tls"  # the cluster's Ray CA and its nodes' certificates
ROLE_AUTH = "auth"  # the cluster's Ray token
SUFFIX_LENGTH = 8
MAX_VM_NAME = 63  # a VM's name is its guest's host name
SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def head_vm_name(cluster: str, nounce: str) -> str:
    return f"{cluster}-h-{nounce}"


def worker_vm_name(cluster: str, suffix: str) -> str:
    return f"{cluster}-w-{suffix}"


class ClusterSecret(enum.StrEnum):
    """The Secrets the operator keeps for a cluster, `<cluster>-<suffix>`. Names of two clusters never meet:
    every Secret name the operator derives is the cluster's name, '-' and a suffix with exactly one '-' in it.
    Were `<a>-<s>` equal to `<a>-<x>-<t>` for clusters `a` and `a-x`, the suffix s would hold more '-' than t."""

    CA = "ray-ca"  # Ray's CA: certificate and key, the operator's alone
    # every node's certificate, by address; not "<cluster>-tls": Ray's vSphere provider tries to create that one
    CERTIFICATES = "ray-tls"
    RAY_CLIENT = "ray-client"  # a Ray client's certificate, for people
    RAY_TOKEN = "ray-auth"  # Ray's token authentication
    SA_TOKEN = "autoscaler-token"  # the cluster's ServiceAccount token

    def of(self, cluster: str) -> str:
        return f"{cluster}-{self.value}"


def bootstrap_secret_name(cluster: str, role: str, node_type: str) -> str:
    """One cloud-init Secret per role and node type, `<cluster>-<role>-<digest of the type>`: one '-' in the suffix,
    as every ClusterSecret's (neither the role nor the digest holds one)."""
    digest = hashlib.sha256(node_type.encode()).hexdigest()[:10]
    return f"{cluster}-{role}-{digest}"


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


def is_worker_vm_name(cluster: str, name: str) -> bool:
    """Whether name is a worker VM name of this cluster in the form Ray's vSphere provider makes:
    `<cluster>-w-` and SUFFIX_LENGTH lower-case letters or digits."""
    suffix = name.removeprefix(f"{cluster}-w-")
    return suffix != name and len(suffix) == SUFFIX_LENGTH and all(c in SUFFIX_ALPHABET for c in suffix)
