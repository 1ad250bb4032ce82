"""Desired and observed objects in, the API calls that close the gap out. Pure."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vmray_operator.api.contract import ANNOTATION_DRAIN_STARTED, LABEL_NODE_TYPE, Body
from vmray_operator.reconcile.observed import Observed, is_deleting, role, user_data_digest
from vmray_operator.reconcile.rollout import VM_LEVEL, NodeReadiness, rollout
from vmray_operator.render.desired import DesiredState
from vmray_operator.render.identity import SERVICE_ACCOUNT_TOKEN_TYPE
from vmray_operator.render.names import ROLE_AUTH, ROLE_TLS
from vmray_operator.render.objects import USER_DATA_KEY
from vmray_operator.timestamps import parse, rfc3339


class Kind(enum.Enum):
    SERVICE_ACCOUNT = "ServiceAccount"
    ROLE = "Role"
    ROLE_BINDING = "RoleBinding"
    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"
    TOKEN_SECRET = "TokenSecret"  # a Secret Kubernetes fills with a ServiceAccount's token
    SERVICE = "VirtualMachineService"
    VM = "VirtualMachine"
    METRICS_SERVICE = "Service"  # the nodes' Ray metrics for Prometheus (reconcile/metrics_targets.py)
    ENDPOINT_SLICE = "EndpointSlice"


@dataclass(frozen=True)
class Create:
    kind: Kind
    body: Body

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


@dataclass(frozen=True)
class Update:
    kind: Kind
    name: str
    patch: dict[str, Any]  # JSON merge patch
    basis: str = ""  # the resourceVersion the patch was made against ("": not told)


@dataclass(frozen=True)
class Delete:
    kind: Kind
    name: str
    uid: str | None
    reason: str


Action = Create | Update | Delete


def _uid(body: Body) -> str | None:
    uid = body.get("metadata", {}).get("uid")
    return str(uid) if uid else None


def _secret_actions(desired: DesiredState, observed: Observed) -> list[Action]:
    actions: list[Action] = []
    token = desired.ray_token_secret  # made once; nodes and people hold it, so it never changes
    if token is not None and token["metadata"]["name"] not in observed.secrets:
        actions.append(Create(Kind.SECRET, token))
    for name, secret in desired.secrets.items():
        current = observed.secrets.get(name)
        if current is None:
            actions.append(Create(Kind.SECRET, secret))
        elif user_data_digest((current.get("data") or {}).get(USER_DATA_KEY)) != user_data_digest(
            secret["data"][USER_DATA_KEY]
        ):
            actions.append(Update(Kind.SECRET, name, {"data": secret["data"]}))
    return actions


# What each kind of the cluster's identity must hold; the rest (metadata, defaults) is the API server's.
_IDENTITY_FIELDS = {
    "ServiceAccount": ("automountServiceAccountToken",),
    "Role": ("rules",),
    "RoleBinding": ("subjects", "roleRef"),
}


def _identity_object_actions(body: Body, current: Body | None) -> list[Action]:
    kind, name = Kind(body["kind"]), body["metadata"]["name"]
    if current is None:
        return [Create(kind, body)]
    if is_deleting(current):
        return []
    changed = {f: body.get(f) for f in _IDENTITY_FIELDS[body["kind"]] if current.get(f) != body.get(f)}
    if not changed:
        return []
    if "roleRef" in changed:  # immutable: the binding is made again
        return [Delete(kind, name, _uid(current), "its roleRef was changed")]
    return [Update(kind, name, changed)]


def _identity_actions(desired: DesiredState, observed: Observed) -> list[Action]:
    """The cluster's ServiceAccount, Role and RoleBinding as they should be: made when missing, put back when
    someone changed them (a Role cut down would stop the autoscaler). The token Secret comes last: Kubernetes
    fills it only for an existing ServiceAccount."""
    wanted = desired.token_secret
    if wanted is None:
        reason = "the cluster needs no ServiceAccount"
        tokens: list[Action] = [
            Delete(Kind.TOKEN_SECRET, name, _uid(secret), reason)
            for name, secret in sorted(observed.secrets.items())
            if secret.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE and not is_deleting(secret)
        ]
        return tokens + [
            Delete(Kind(kind), name, _uid(body), reason)
            for kind, objects in sorted(observed.identity.items())
            for name, body in sorted(objects.items())
            if not is_deleting(body)
        ]
    actions: list[Action] = []
    for body in desired.identity:
        actions += _identity_object_actions(body, observed.identity_object(body["kind"], body["metadata"]["name"]))
    if wanted["metadata"]["name"] not in observed.secrets:
        actions.append(Create(Kind.TOKEN_SECRET, wanted))
    return actions


def _config_map_actions(desired: DesiredState, observed: Observed) -> list[Action]:
    wanted = desired.autoscaler_config
    wanted_names = {wanted["metadata"]["name"]} if wanted else set()
    actions: list[Action] = [
        Delete(Kind.CONFIG_MAP, name, _uid(body), "the head runs no autoscaler")
        for name, body in sorted(observed.config_maps.items())
        if name not in wanted_names and not is_deleting(body)
    ]
    if wanted is None:
        return actions
    current = observed.config_maps.get(wanted["metadata"]["name"])
    if current is None:
        actions.append(Create(Kind.CONFIG_MAP, wanted))
    elif current.get("data") != wanted["data"]:
        actions.append(Update(Kind.CONFIG_MAP, wanted["metadata"]["name"], {"data": wanted["data"]}))
    return actions


def _service_actions(desired: DesiredState, observed: Observed) -> list[Action]:
    current = observed.service
    if current is None:
        return [Create(Kind.SERVICE, desired.service)]
    wanted = desired.service["spec"]
    have = current.get("spec", {})
    if any(have.get(key) != value for key, value in wanted.items()):
        return [Update(Kind.SERVICE, desired.service["metadata"]["name"], {"spec": wanted})]
    return []


@dataclass(frozen=True)
class Drain:
    """How VMs leave: a soft power-off first (Ray drains the node on SIGTERM), then deletion once the
    VM is off or drain_timeout seconds have passed."""

    now: datetime.datetime
    timeout: float
    by_type: Mapping[str, float] = field(default_factory=dict)  # a scheduled tier's: its drain lead time

    def timeout_of(self, vm: Body) -> float:
        node_type = (vm["metadata"].get("labels") or {}).get(LABEL_NODE_TYPE, "")
        return self.by_type.get(node_type, self.timeout)


def retire(vm: Body, reason: str, drain: Drain) -> list[Action]:
    """The next step of taking one VM away."""
    meta, name = vm["metadata"], vm["metadata"]["name"]
    if is_deleting(vm):
        return []
    power = (vm.get("status") or {}).get("powerState")
    started = (meta.get("annotations") or {}).get(ANNOTATION_DRAIN_STARTED)
    overdue = False
    if started:
        since = parse(started)
        overdue = (drain.now - since).total_seconds() > drain.timeout_of(vm)
    if power != "PoweredOn" or overdue:
        return [Delete(Kind.VM, name, _uid(vm), reason)]
    if (vm.get("spec") or {}).get("powerState") != "PoweredOff":
        patch = {
            "metadata": {"annotations": {ANNOTATION_DRAIN_STARTED: rfc3339(drain.now)}},
            "spec": {"powerState": "PoweredOff"},
        }
        return [Update(Kind.VM, name, patch)]
    return []  # powering off softly: Ray is draining the node


def retiring(vm: Body) -> bool:
    """Powered off by retire() to be deleted (not a suspended cluster's head, which is off to stay)."""
    annotations = vm.get("metadata", {}).get("annotations") or {}
    return (
        (vm.get("spec") or {}).get("powerState") == "PoweredOff"
        and ANNOTATION_DRAIN_STARTED in annotations
        and not is_deleting(vm)
    )


def draining(observed: Observed) -> bool:
    return any(retiring(vm) for vm in observed.vms.values())


def _head_actions(desired: DesiredState, observed: Observed) -> list[Action]:
    """The head made, or powered on or off as the cluster is resumed or suspended (unless it is being replaced)."""
    head_name, wanted = desired.service["metadata"]["name"], desired.head_vm  # the service is named like the head
    if wanted is None:
        return []
    current = observed.vms.get(head_name)
    if current is None:
        return [Create(Kind.VM, wanted)]
    power = wanted["spec"]["powerState"]
    if power == "PoweredOff" and any(name != head_name for name in observed.vms):
        return []  # a suspended cluster's workers leave first: Ray drains them while its head runs
    return _power(head_name, power, current)


def _power(name: str, power: str, current: Body) -> list[Action]:
    """The VM powered as wanted: on, also after someone powered it off, unless it is leaving."""
    if is_deleting(current) or retiring(current) or (current.get("spec") or {}).get("powerState") == power:
        return []
    return [Update(Kind.VM, name, {"spec": {"powerState": power}})]


def plan(desired: DesiredState, observed: Observed, drain: Drain, readiness: NodeReadiness = VM_LEVEL) -> list[Action]:
    """Secrets first (VMs boot from them), then the service, the head, the workers; removals and
    replacements of outdated VMs last."""
    actions = _identity_actions(desired, observed) + _config_map_actions(desired, observed)
    actions += _secret_actions(desired, observed)
    actions += _service_actions(desired, observed)
    head_name = desired.service["metadata"]["name"]  # the service is named like the head VM
    actions += _head_actions(desired, observed)
    for name, vm in desired.workers.items():
        current = observed.vms.get(name)
        actions += [Create(Kind.VM, vm)] if current is None else _power(name, "PoweredOn", current)
    heads = observed.heads()
    for name, vm in sorted(observed.vms.items()):
        if is_deleting(vm) or name == head_name or name in desired.wanted_workers:
            continue
        reason = "not the cluster's head VM" if name in heads else "not in spec.autoscaler_desired_workers"
        actions += retire(vm, desired.withheld.get(name, reason), drain)
    step = rollout(desired, observed, readiness)  # outdated VMs, one at a time; the plan above recreates them
    for name in step.replacing:
        why = step.outdated.get(name, "its replacement is under way")
        actions += retire(observed.vms[name], f"replacing it with the current spec: {why}", drain)
    referenced = {
        vm.get("spec", {}).get("bootstrap", {}).get("cloudInit", {}).get("rawCloudConfig", {}).get("name")
        for vm in observed.vms.values()
    }
    for name, secret in sorted(observed.secrets.items()):
        if secret.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE:
            continue  # the identity's, see _identity_actions
        if role(secret) in (ROLE_TLS, ROLE_AUTH):
            continue  # the CA and the certificates (kept by the operator's certifier), and Ray's token
        if name not in desired.secrets and name not in referenced:
            actions.append(Delete(Kind.SECRET, name, _uid(secret), "no node of its type is wanted"))
    return actions


def deletion_plan(observed: Observed, drain: Drain) -> list[Action]:
    """Everything the cluster owns goes; VMs drained first, Secrets once no VM boots from them."""
    actions: list[Action] = []
    for _, vm in sorted(observed.vms.items()):
        actions += retire(vm, "the cluster is being deleted", drain)
    if observed.service is not None and not is_deleting(observed.service):
        actions.append(
            Delete(
                Kind.SERVICE,
                observed.service["metadata"]["name"],
                _uid(observed.service),
                "the cluster is being deleted",
            )
        )
    if not observed.vms:
        actions += [
            Delete(Kind.SECRET, name, _uid(secret), "the cluster is being deleted")
            for name, secret in sorted(observed.secrets.items())
            if not is_deleting(secret)
        ]
    return actions
