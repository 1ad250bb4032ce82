"""The Secrets a cluster's spec names (the password hash, registry credentials): what the builders may take from
them. Pure.

The operator reads Secrets its users cannot always read: a spec must never make it copy into a VM what its owner
could not have put there. So a Secret Kubernetes keeps for a ServiceAccount's token, and any Secret the operator
itself keeps for a cluster (CA keys, certificates, tokens, bootstrap data), is refused by name of the field, and a
password hash must be a crypt(3) hash (whatever else a Secret holds never reaches a VM as one)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from vmray_operator.api import contract
from vmray_operator.api.contract import Body
from vmray_operator.api.models import PASSWORD_HASH, VMRayClusterSpec
from vmray_operator.reconcile.observed import secret_value
from vmray_operator.render.identity import SERVICE_ACCOUNT_TOKEN_TYPE
from vmray_operator.render.registry import RegistryCredentials


@dataclass(frozen=True)
class UserSecrets:
    """What the cluster's referenced Secrets hold, which of them (or of their keys) are missing, and which the spec
    may not name."""

    password_hash: str | None = None
    registry: RegistryCredentials | None = None
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()  # "field: why", for the SpecValid condition


def referenced_secret_names(spec: VMRayClusterSpec) -> list[str]:
    """The Secrets of the cluster's namespace the spec names."""
    wanted: list[str] = []
    if spec.common_node_config.vm_password_secret is not None:
        wanted.append(spec.common_node_config.vm_password_secret.name)
    if spec.docker_config.auth_secret_name:
        wanted.append(spec.docker_config.auth_secret_name)
    return list(dict.fromkeys(wanted))


def forbidden_reason(secret: Body) -> str | None:
    """Why no spec may name this Secret, or None."""
    if secret.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE:
        return "it holds a ServiceAccount token"
    meta = secret.get("metadata") or {}
    if (meta.get("labels") or {}).get(contract.LABEL_MANAGED_BY) == contract.MANAGER:
        return "the operator keeps it for a cluster"
    for owner in meta.get("ownerReferences") or []:
        if isinstance(owner, dict) and str(owner.get("apiVersion", "")).startswith(f"{contract.GROUP}/"):
            return "the operator keeps it for a cluster"
    return None


def read_user_secrets(spec: VMRayClusterSpec, secrets: Mapping[str, Body | None]) -> UserSecrets:
    """secrets: the Secrets referenced_secret_names() named, by name; None for one that does not exist."""
    missing: list[str] = []
    invalid: list[str] = []
    password_hash = None
    ref = spec.common_node_config.vm_password_secret
    if ref is not None:
        field = "common_node_config.vm_password_secret"
        secret = secrets.get(ref.name)
        why = forbidden_reason(secret) if secret is not None else None
        value = secret_value(secret, ref.key) if why is None else None
        if why is not None:
            invalid.append(f"{field}: Secret {ref.name} may not be used: {why}")
        elif value is None:
            missing.append(f"Secret {ref.name} (key {ref.key})")
        elif not value or not re.fullmatch(PASSWORD_HASH, value.strip()):
            invalid.append(
                f"{field}: the value of key {ref.key} of Secret {ref.name} is not a crypt(3) password hash "
                "(for example from `mkpasswd -m sha-512`)"
            )
        else:
            password_hash = value.strip()
    registry = None
    name = spec.docker_config.auth_secret_name
    if name:
        field = "docker_config.auth_secret_name"
        secret = secrets.get(name)
        why = forbidden_reason(secret) if secret is not None else None
        username, password = secret_value(secret, "username"), secret_value(secret, "password")
        if why is not None:
            invalid.append(f"{field}: Secret {name} may not be used: {why}")
        elif username is None or password is None:
            missing.append(f"Secret {name} (keys username and password)")
        else:
            registry = RegistryCredentials(username, password, secret_value(secret, "registry"))
    return UserSecrets(password_hash, registry, tuple(missing), tuple(invalid))
