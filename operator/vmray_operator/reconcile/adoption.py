"""The first write to a new cluster: our finalizer, the head nounce, and the initial worker names.

One merge patch carrying metadata.resourceVersion, so it only applies to the object as it was read
(optimistic concurrency): two operators, or an operator and Ray, can never both seed workers."""

from __future__ import annotations

from collections.abc import Callable

from vmray_operator.api import contract
from vmray_operator.api.contract import Body
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.reconcile.schedule import workers_to_remove
from vmray_operator.reconcile.suspension import resumed_patch
from vmray_operator.render import names


def missing_floor(
    spec: VMRayClusterSpec, cluster: str, suffix: Callable[[], str], closed: frozenset[str] = frozenset()
) -> dict[str, str]:
    """New worker names that bring every worker type up to its min_workers (a closed tier's is 0)."""
    counts: dict[str, int] = {}
    for node_type in spec.autoscaler_desired_workers.values():
        counts[node_type] = counts.get(node_type, 0) + 1
    taken = set(spec.autoscaler_desired_workers)
    added: dict[str, str] = {}
    for node_type, config in sorted(spec.common_node_config.available_node_types.items()):
        if node_type == spec.head_node.node_type or node_type in closed:
            continue
        for _ in range(config.min_workers - counts.get(node_type, 0)):
            name = names.worker_vm_name(cluster, suffix())
            while name in taken:
                name = names.worker_vm_name(cluster, suffix())
            taken.add(name)
            added[name] = node_type
    return added


def adoption_patch(
    body: Body, spec: VMRayClusterSpec, suffix: Callable[[], str], closed: frozenset[str] = frozenset()
) -> Body | None:
    """The patch that makes a cluster ours and ready to reconcile, or None when nothing is missing.

    Workers are seeded when the cluster is new (no head nounce yet; `ray up` clusters come with one
    and Ray's autoscaler keeps their floor), and always when autoscaling is off (then the operator
    keeps the floor itself); a closed tier's floor is none."""
    meta = body["metadata"]
    labels = meta.get("labels") or {}
    patch_meta: Body = {}
    patch: Body = {}
    finalizers = list(meta.get("finalizers") or [])
    if contract.FINALIZER not in finalizers:
        patch_meta["finalizers"] = [*finalizers, contract.FINALIZER]
    is_new = contract.HEAD_NOUNCE_LABEL not in labels
    if is_new:
        patch_meta["labels"] = {contract.HEAD_NOUNCE_LABEL: suffix()}
    if is_new or not spec.autoscaling.enabled:
        added = missing_floor(spec, meta["name"], suffix, closed)
        if added:
            patch["spec"] = {"autoscaler_desired_workers": added}
    if not patch_meta and not patch:
        return None
    patch["metadata"] = {**patch_meta, "resourceVersion": meta["resourceVersion"]}
    return patch


def own_spec_patch(body: Body, spec: VMRayClusterSpec, closed: frozenset[str]) -> Body | None:
    """The operator's other writes to a cluster it owns, or None: a closed tier's workers leave
    spec.autoscaler_desired_workers (as Ray's autoscaler would take them away), and a resumed cluster forgets that it
    was suspended for being idle. Conditional on the version read, like adoption."""
    patch: Body = resumed_patch(body, spec) or {}
    removed = workers_to_remove(spec, closed)
    if removed:
        patch["spec"] = {"autoscaler_desired_workers": removed}
    if not patch:
        return None
    patch.setdefault("metadata", {})["resourceVersion"] = body["metadata"]["resourceVersion"]
    return patch
