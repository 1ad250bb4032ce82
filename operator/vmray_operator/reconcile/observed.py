"""What exists now for one cluster, as the watches saw it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from vmray_operator.api import contract
from vmray_operator.api.contract import GUEST_BOOTSTRAP_CONDITION, VM_PREREQUISITE_CONDITIONS, Body
from vmray_operator.render import names


@dataclass(frozen=True)
class Observed:
    vms: dict[str, Body] = field(default_factory=dict)  # the cluster's VMs by name
    service: Body | None = None  # the head's VirtualMachineService
    secrets: dict[str, Body] = field(default_factory=dict)  # the cluster's bootstrap Secrets by name
    config_maps: dict[str, Body] = field(default_factory=dict)  # the cluster's ConfigMaps by name
    # the cluster's identity: ServiceAccounts, Roles and RoleBindings by kind, then name
    identity: dict[str, dict[str, Body]] = field(default_factory=dict)
    metrics_service: Body | None = None  # the Service that names the nodes' Ray metrics
    endpoint_slices: dict[str, Body] = field(default_factory=dict)  # its EndpointSlices by name

    def identity_object(self, kind: str, name: str) -> Body | None:
        return self.identity.get(kind, {}).get(name)

    def workers(self) -> dict[str, Body]:
        return {n: vm for n, vm in self.vms.items() if role(vm) == names.ROLE_WORKER}

    def heads(self) -> dict[str, Body]:
        return {n: vm for n, vm in self.vms.items() if role(vm) == names.ROLE_HEAD}

    def vm_addresses(self) -> frozenset[str]:
        """The addresses VM Operator reports for the cluster's VMs."""
        return frozenset(address for vm in self.vms.values() if (address := vm_address(vm)))


def version(body: Body | None) -> str:
    """An object's resourceVersion, "" for no object."""
    meta = (body or {}).get("metadata")
    return str(meta.get("resourceVersion", "")) if isinstance(meta, dict) else ""


def role(body: Body) -> str | None:
    labels: dict[str, str] = body.get("metadata", {}).get("labels") or {}
    return labels.get(contract.LABEL_ROLE)


def is_deleting(body: Body) -> bool:
    return bool(body.get("metadata", {}).get("deletionTimestamp"))


def ipv4(value: Any) -> str | None:
    """value, when it is an IPv4 address (in its usual form); None for anything else. An address VM Operator
    reports goes into workers' start scripts, certificates and the status Ray's provider reads."""
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def load_balancer_ip(service: Body | None) -> str | None:
    """The head service's external IPv4 address, as VM Operator reports it; None until it has a valid one."""
    status = (service or {}).get("status")
    balancer = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = balancer.get("ingress") if isinstance(balancer, dict) else None
    for entry in ingress if isinstance(ingress, list) else []:
        address = ipv4(entry.get("ip")) if isinstance(entry, dict) else None
        if address:
            return address
    return None


def vm_address(vm: Body) -> str | None:
    """The VM's primary IPv4 address as VM Operator reports it; anything but an IPv4 address is absent."""
    status = vm.get("status")
    network = status.get("network") if isinstance(status, dict) else None
    return ipv4(network.get("primaryIP4")) if isinstance(network, dict) else None


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


# What a VM's condition may bring into the cluster's status: the guest writes its own (GuestBootstrap).
CONDITION_MESSAGE_LIMIT = 300


def find_condition(vm: Body, type_: str) -> dict[str, Any] | None:
    """The VM's status condition of that type; values of the wrong type are read as absent."""
    status = vm.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions if isinstance(conditions, list) else []:
        if isinstance(condition, dict) and condition.get("type") == type_:
            return condition
    return None


def failure(vm: Body) -> tuple[str, str, str] | None:
    """(reason, message, condition type) of the first VM condition that is False and says the VM cannot come up
    as it is: VM Operator's prerequisites, then what the guest reported of its bootstrap; None when none is."""
    for type_ in (*VM_PREREQUISITE_CONDITIONS, GUEST_BOOTSTRAP_CONDITION):
        condition = find_condition(vm, type_)
        if condition is not None and condition.get("status") == "False":
            reason, message = condition.get("reason"), condition.get("message")
            return (
                reason if isinstance(reason, str) and reason else type_,
                message[:CONDITION_MESSAGE_LIMIT] if isinstance(message, str) and message else type_,
                type_,
            )
    return None


USER_DATA_DIGEST = "sha256:"  # never the start of base64 text


def user_data_digest(value: str | None) -> str | None:
    """A bootstrap Secret's user-data as the stores keep it: a digest. The text is the largest part of what the
    watches hold and is only ever compared with the rendered one; either form gives the same digest."""
    if value is None or value.startswith(USER_DATA_DIGEST):
        return value
    return USER_DATA_DIGEST + hashlib.sha256(value.encode()).hexdigest()
