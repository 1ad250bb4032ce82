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
    for ingress in (service or {}).get("status", {}).get("loadBalancer", {}).get("ingress") or []:
        if ingress.get("ip"):
            return str(ingress["ip"])
    return None


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
