"""The VMRayCluster CustomResourceDefinition, generated from the models in api/models.py.

`make generate` (api/generated.py) writes it to crds/vmray.broadcom.com_vmrayclusters.yaml; a test fails
when the checked-in file differs from what the models give."""

from __future__ import annotations

from typing import Any

from vmray_operator.api import models
from vmray_operator.api.contract import API_VERSION, GROUP, KIND, PLURAL, VERSION, ConditionType
from vmray_operator.api.generated import generated_yaml
from vmray_operator.api.schema import structural

CRD_FILE = f"{GROUP}_{PLURAL}.yaml"
CRD_DESCRIPTION = "A Ray cluster on vSphere VMs: one head VM and worker VMs run by VM Operator."
MAX_CLUSTER_NAME = 40  # leaves room for "-w-" + 8 characters within a 63-character VM host name

_IMMUTABLE = (
    ("head_node.node_type", "self.head_node.node_type == oldSelf.head_node.node_type"),
    ("head_node.port", "self.head_node.port == oldSelf.head_node.port"),
    ("enable_tls", "self.enable_tls == oldSelf.enable_tls"),
    ("enable_token_auth", "self.enable_token_auth == oldSelf.enable_token_auth"),
    (
        "common_node_config.storage_class",
        "self.common_node_config.storage_class == oldSelf.common_node_config.storage_class",
    ),
    ("common_node_config.vm_user", "self.common_node_config.vm_user == oldSelf.common_node_config.vm_user"),
    (
        "common_node_config.network",
        "has(self.common_node_config.network) == has(oldSelf.common_node_config.network) && "
        "(!has(self.common_node_config.network) || "
        "self.common_node_config.network == oldSelf.common_node_config.network)",
    ),
)

_TYPES = "self.common_node_config.available_node_types"
_SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": f"self.head_node.node_type in {_TYPES}",
        "messageExpression": "'head_node.node_type: ' + self.head_node.node_type + "
        "' is not a key of common_node_config.available_node_types'",
        "fieldPath": ".head_node.node_type",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": f"{_TYPES}.all(t, t == self.head_node.node_type || "
        f"{_TYPES}[t].max_workers <= self.common_node_config.max_workers)",
        "message": "common_node_config.available_node_types: a worker type's max_workers exceeds "
        "common_node_config.max_workers",
        "fieldPath": ".common_node_config.available_node_types",
    },
    {
        "rule": f"{_TYPES}.filter(t, t != self.head_node.node_type)"
        f".map(t, {_TYPES}[t].min_workers).sum() <= self.common_node_config.max_workers",
        "message": "common_node_config.available_node_types: the sum of the worker types' min_workers "
        "exceeds common_node_config.max_workers",
        "fieldPath": ".common_node_config.available_node_types",
    },
    {
        "rule": f"!has({_TYPES}[self.head_node.node_type].schedule)",
        "message": "common_node_config.available_node_types: the head's type has no schedule (suspend the cluster "
        "instead)",
        "fieldPath": ".common_node_config.available_node_types",
    },
    {
        "rule": f"self.autoscaler_desired_workers.all(w, self.autoscaler_desired_workers[w] in {_TYPES})",
        "message": "autoscaler_desired_workers: every value must be a key of common_node_config.available_node_types",
        "fieldPath": ".autoscaler_desired_workers",
    },
    {
        "rule": "size(self.autoscaler_desired_workers) <= self.common_node_config.max_workers",
        "message": "autoscaler_desired_workers: more workers than common_node_config.max_workers",
        "fieldPath": ".autoscaler_desired_workers",
    },
    {
        "rule": "!has(self.common_node_config.vm_password_secret) || "
        "!has(self.common_node_config.vm_password_salt_hash) || "
        "self.common_node_config.vm_password_salt_hash == ''",
        "message": "common_node_config.vm_password_secret: give the password hash either here or in "
        "vm_password_salt_hash, not both",
        "fieldPath": ".common_node_config.vm_password_secret",
    },
    *({"rule": rule, "message": f"{field} is immutable", "fieldPath": f".{field}"} for field, rule in _IMMUTABLE),
]

_ROOT_RULES: list[dict[str, str]] = [
    {
        "rule": f"size(self.metadata.name) <= {MAX_CLUSTER_NAME} && self.metadata.name.matches('{models.DNS_LABEL}')",
        "message": f"metadata.name must be a DNS label (lower-case letters, digits and '-') of at most "
        f"{MAX_CLUSTER_NAME} characters: it is the prefix of every VM name",
    },
]

# The form Ray's vSphere provider makes names in. That a name starts with this cluster's own name is checked by the
# operator (SpecValid): a rule here reading metadata.name costs more than the API server allows.
_WORKER_NAME_RULE = {
    "rule": "self.all(w, size(w) <= 63 && w.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?-w-[a-z0-9]{8}$'))",
    "message": "autoscaler_desired_workers: worker VM names are the cluster's name, '-w-' and 8 lower-case letters "
    "or digits, at most 63 characters",
}
_MIN_MAX_RULE = {
    "rule": "self.min_workers <= self.max_workers",
    "message": "min_workers must not exceed max_workers",
    "fieldPath": ".min_workers",
}


def _column(name: str, type_: str, path: str, description: str, wide: bool = False) -> dict[str, Any]:
    """A column of `kubectl get`; wide: shown with `-o wide` only."""
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path, "description": description}
    return {**column, "priority": 1} if wide else column


# What `kubectl get vmraycluster` shows, the story at a glance: the state and, while it is not Ready, why; the
# workers wanted and running (not "Ready", which reads like the condition); and with -o wide what Ray reports.
PRINTER_COLUMNS = [
    _column("State", "string", ".status.cluster_state", "The cluster's state at a glance."),
    _column(
        "Reason",
        "string",
        f'.status.conditions[?(@.type=="{ConditionType.READY}")].reason',
        "The Ready condition's reason: why the cluster is not Ready, or Running.",
    ),
    _column("Desired-Workers", "integer", ".status.desired_workers", "Worker VMs wanted."),
    _column("Available-Workers", "integer", ".status.ready_workers", "Worker VMs running."),
    _column("Head-IP", "string", ".status.vm_service_status.ip", "The head service's load balancer address."),
    _column("Age", "date", ".metadata.creationTimestamp", "Since when the cluster exists."),
    _column("Ray", "string", ".status.ray.version", "Ray version the head runs.", wide=True),
    _column("CPUs", "number", ".status.ray.cpus", "CPUs of the live Ray nodes.", wide=True),
    _column("GPUs", "number", ".status.ray.gpus", "GPUs of the live Ray nodes.", wide=True),
    _column("Dashboard", "string", ".status.endpoints.dashboard", "URL of the Ray dashboard and job API.", wide=True),
]
# What `kubectl explain vmraycluster` says of the fields every Kubernetes object has.
_OBJECT_FIELDS = {
    "apiVersion": f"The API group and version of this object: {API_VERSION}.",
    "kind": f"{KIND}.",
}  # metadata takes no description: the API server documents it as every object's


def spec_schema() -> dict[str, Any]:
    schema = structural(models.VMRayClusterSpec)
    schema["x-kubernetes-validations"] = _SPEC_RULES
    # Objects that default to empty: the API server then fills in their own defaults, and the rules
    # above can read them without has() guards.
    for name in ("api_server", "worker_node", "autoscaler_desired_workers", "autoscaling", "docker_config"):
        schema["properties"][name]["default"] = {}
    desired = schema["properties"]["autoscaler_desired_workers"]
    desired["additionalProperties"] = {"type": "string", "maxLength": 63}
    desired["x-kubernetes-validations"] = [_WORKER_NAME_RULE]
    node_types = schema["properties"]["common_node_config"]["properties"]["available_node_types"]
    node_types["additionalProperties"]["x-kubernetes-validations"] = [_MIN_MAX_RULE]
    return schema


def vmraycluster_crd() -> dict[str, Any]:
    status = structural(models.VMRayClusterStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["vmrc"],
                "categories": ["vmray"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": CRD_DESCRIPTION,
                            "required": ["spec"],
                            "x-kubernetes-validations": _ROOT_RULES,
                            "properties": {
                                "apiVersion": {"type": "string", "description": _OBJECT_FIELDS["apiVersion"]},
                                "kind": {"type": "string", "description": _OBJECT_FIELDS["kind"]},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    return generated_yaml(vmraycluster_crd())
