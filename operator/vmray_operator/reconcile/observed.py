"""What exists now for one cluster, as the watches saw it."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from vmray_operator.render import names

Body = dict[str, Any]


@dataclass(frozen=True)
class Observed:
    vms: dict[str, Body] = field(default_factory=dict)  # the cluster's VMs by name
    service: Body | None = None  # the head's VirtualMachineService
    secrets: dict[str, Body] = field(default_factory=dict)  # the cluster's bootstrap Secrets by name
    config_maps: dict[str, Body] = field(default_factory=dict)  # the cluster's ConfigMaps by name
    # the cluster's identity: ServiceAccounts, Roles and RoleBindings by kind, then name
    identity: dict[str, dict[str, Body]] = field(default_factory=dict)

    def identity_object(self, kind: str, name: str) -> Body | None:
        return self.identity.get(kind, {}).get(name)

    def workers(self) -> dict[str, Body]:
        return {n: vm for n, vm in self.vms.items() if role(vm) == names.ROLE_WORKER}

    def heads(self) -> dict[str, Body]:
        return {n: vm for n, vm in self.vms.items() if role(vm) == names.ROLE_HEAD}


def role(body: Body) -> str | None:
    labels: dict[str, str] = body.get("metadata", {}).get("labels") or {}
    return labels.get(names.LABEL_ROLE)


def is_deleting(body: Body) -> bool:
    return bool(body.get("metadata", {}).get("deletionTimestamp"))


def load_balancer_ip(service: Body | None) -> str | None:
    status = (service or {}).get("status")
    balancer = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = balancer.get("ingress") if isinstance(balancer, dict) else None
    for entry in ingress if isinstance(ingress, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("ip"), str) and entry["ip"]:
            return str(entry["ip"])
    return None


def vm_address(vm: Body) -> str | None:
    """The VM's primary IPv4 address as VM Operator reports it; anything but a non-empty string is absent."""
    status = vm.get("status")
    network = status.get("network") if isinstance(status, dict) else None
    address = network.get("primaryIP4") if isinstance(network, dict) else None
    return address if isinstance(address, str) and address else None


def controlled_by(body: Body, uid: str) -> bool:
    """Whether the object's controller (ownerReferences, controller: true) is the object with this uid.
    A cluster's objects are told apart by it from another controller's, or from those of an earlier
    cluster of the same name that Kubernetes has not collected yet."""
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if isinstance(owner, dict) and owner.get("controller"):
            return owner.get("uid") == uid
    return False


def secret_value(secret: Body | None, key: str) -> str | None:
    """A Secret's value under key, decoded; None when the Secret, the key or a readable value is missing."""
    encoded = ((secret or {}).get("data") or {}).get(key)
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def issued_token(secret: Body | None) -> str | None:
    """The token Kubernetes wrote into a ServiceAccount token Secret, or None while it has not."""
    return secret_value(secret, "token")


# VM status conditions that, False, say the VM cannot come up as it is: VM Operator's prerequisites, and what the
# guest reports of its own bootstrap (guestinfo.vmservice.bootstrap.condition, shown as GuestBootstrap).
FAILURE_CONDITIONS = (
    "VirtualMachineClassReady",
    "VirtualMachineImageReady",
    "VirtualMachineStorageReady",
    "VirtualMachineBootstrapReady",
    "GuestBootstrap",
)


def failure(vm: Body) -> tuple[str, str] | None:
    """(reason, message) of the first of FAILURE_CONDITIONS that is False on the VM; None when none is. Values of
    the wrong type are read as absent."""
    status = vm.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for type_ in FAILURE_CONDITIONS:
        for condition in conditions if isinstance(conditions, list) else []:
            if isinstance(condition, dict) and condition.get("type") == type_ and condition.get("status") == "False":
                reason, message = condition.get("reason"), condition.get("message")
                return (
                    reason if isinstance(reason, str) and reason else type_,
                    message if isinstance(message, str) and message else type_,
                )
    return None
