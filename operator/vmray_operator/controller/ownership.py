"""Creating an object a cluster owns, when an object of that name may already exist."""

from __future__ import annotations

from vmray_operator.api.contract import Body
from vmray_operator.kube.client import Conflict, Kube
from vmray_operator.kube.resources import Resource
from vmray_operator.reconcile.observed import controlled_by


class NameTaken(Exception):
    """An object the cluster needs exists under another owner (ownerReferences). earlier: the owner is an earlier
    cluster of the same name, deleted, whose objects Kubernetes has not collected yet (it will, in seconds)."""

    def __init__(self, message: str, earlier: bool = False) -> None:
        super().__init__(message)
        self.earlier = earlier


def _earlier_namesake(existing: Body, body: Body) -> bool:
    """Whether existing is controlled by a cluster of the same kind and name as body's controller."""

    def controller(obj: Body) -> tuple[object, object] | None:
        for ref in obj.get("metadata", {}).get("ownerReferences") or []:
            if isinstance(ref, dict) and ref.get("controller"):
                return ref.get("kind"), ref.get("name")
        return None

    ours = controller(body)
    return ours is not None and controller(existing) == ours


async def create_owned(
    kube: Kube, resource: Resource, body: Body, namespace: str, owner_uid: str
) -> tuple[Body | None, bool]:
    """Creates body: (the created object, True). When its name is taken: (the object already there, False)
    if the cluster owns it (made by an earlier run whose watch event has not arrived yet), (None, False) if
    it went away meanwhile; an object of another owner raises NameTaken."""
    try:
        return await kube.create(resource, body, namespace), True
    except Conflict as error:
        if not error.already_exists:
            raise
    name = body["metadata"]["name"]
    existing = await kube.get(resource, name, namespace)
    if existing is not None and not controlled_by(existing, owner_uid):
        if _earlier_namesake(existing, body):
            raise NameTaken(f"{body['kind']} {namespace}/{name} belongs to an earlier cluster", earlier=True)
        raise NameTaken(f"{body['kind']} {namespace}/{name} belongs to another owner") from None
    return existing, False
