"""Names, labels and annotations of everything the operator creates."""

from __future__ import annotations

import hashlib

LABEL_CLUSTER = "vmray.broadcom.com/cluster"
LABEL_ROLE = "vmray.broadcom.com/role"
LABEL_NODE_TYPE = "vmray.broadcom.com/node-type"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "vmray-operator"
HEAD_NOUNCE_LABEL = "vmray.kubernetes.io/head-nounce"  # read by Ray's vSphere autoscaler
CREATED_BY_LABEL = "vmray.io/created-by"  # "ray-cli" on clusters made by `ray up`
FINALIZER = "vmray.broadcom.com/finalizer"
# A hash of everything of a VM that VM Operator cannot change in place: another value makes the VM outdated.
ANNOTATION_ROLLOUT_HASH = "vmray.broadcom.com/rollout-hash"
ANNOTATION_RAY_IMAGE = "vmray.broadcom.com/ray-image"  # the image the VM's Ray runs in: a change goes head first
ANNOTATION_DRAIN_STARTED = "vmray.broadcom.com/drain-started"

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


def bootstrap_secret_name(cluster: str, role: str, node_type: str) -> str:
    """One cloud-init Secret per role and node type, `<cluster>-<role>-<digest of the type>`.

    Names of two clusters never meet: every Secret name the operator derives is the cluster's name, '-' and a
    suffix with exactly one '-' in it (here the role has none, nor has the digest). Were `<a>-<s>` equal to
    `<a>-<x>-<t>` for clusters `a` and `a-x`, the suffix s would hold more '-' than t."""
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
