"""Spec problems the API server cannot catch, or could not when the object was stored. Pure."""

from __future__ import annotations

from vmray_operator.api import contract
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.render import names


def without_foreign_workers(spec: VMRayClusterSpec, cluster: str) -> tuple[VMRayClusterSpec, list[str]]:
    """The spec without desired workers whose names are not this cluster's worker names (stored before the API
    server checked them), and a problem per name left out. A name of another form could be another cluster's VM
    (`<cluster>-b-h-...` is the head of cluster `<cluster>-b`), so such a name is never acted on."""
    foreign = sorted(w for w in spec.autoscaler_desired_workers if not names.is_worker_vm_name(cluster, w))
    if not foreign:
        return spec, []
    wanted = {w: t for w, t in spec.autoscaler_desired_workers.items() if w not in foreign}
    problems = [
        f"autoscaler_desired_workers: {w} is not of the form {cluster}-w-<{names.SUFFIX_LENGTH} lower-case letters "
        "or digits>"
        for w in foreign
    ]
    return spec.model_copy(update={"autoscaler_desired_workers": wanted}), problems


def nounce_problem(cluster: str, nounce: str) -> str | None:
    """The head VM is `<cluster>-h-<nounce>`: a nounce with a '-' could name another cluster's VM, and one too
    long a name VM Operator refuses."""
    room = names.MAX_VM_NAME - len(names.head_vm_name(cluster, ""))
    if 1 <= len(nounce) <= room and all(c in names.SUFFIX_ALPHABET for c in nounce):
        return None
    return (
        f"metadata.labels[{contract.HEAD_NOUNCE_LABEL}]: {nounce!r} must be 1 to {room} lower-case letters or digits "
        "(the head VM's name ends with it)"
    )
