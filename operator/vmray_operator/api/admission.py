"""The ValidatingAdmissionPolicy that keeps a cluster's own token to scaling, generated from api/models.py.

Every Ray process on every node of a cluster holds the cluster's ServiceAccount token, and its Role lets it
patch its own VMRayCluster, because Ray's vSphere provider scales by merge-patching
spec.autoscaler_desired_workers. RBAC cannot narrow a patch to one field; this policy does, in the API server
(admissionregistration.k8s.io/v1, no webhook): an update by that ServiceAccount may change
spec.autoscaler_desired_workers and nothing else of the spec, metadata or status.

`make generate` (api/generated.py) writes it to crds/vmray.broadcom.com_cluster-token-policy.yaml; a test
fails when the checked-in file differs from what the models give."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vmray_operator.api import models
from vmray_operator.api.contract import GROUP, PLURAL, VERSION
from vmray_operator.api.generated import generated_yaml
from vmray_operator.render.identity import service_account_name

POLICY_NAME = "vmray-cluster-token"
POLICY_FILE = f"{GROUP}_cluster-token-policy.yaml"
SCALING_FIELD = "autoscaler_desired_workers"
# What the token may never change besides the spec: who owns the object, what finalizes it, what marks it,
# and (should it ever be granted the status subresource) what the operator reports.
GUARDED_METADATA = ("metadata.labels", "metadata.annotations", "metadata.finalizers", "metadata.ownerReferences")
GUARDED_STATUS = "status"

# The ServiceAccount's user name, built in CEL from the request: the cluster name goes through
# service_account_name itself as a CEL splice, so the policy follows the name the operator gives the account.
_ACCOUNT = service_account_name("' + request.name + '")
MATCH_OWN_ACCOUNT = f"request.userInfo.username == 'system:serviceaccount:' + request.namespace + ':{_ACCOUNT}'"


def _field_name(name: str, model: type[BaseModel]) -> str:
    return model.model_fields[name].alias or name


def guarded_spec_fields() -> list[str]:
    """Paths under spec the token may not change: every spec field but the scaling one, and one level into
    the fields that are objects (the API server keeps them present), so a refusal names the very field."""
    paths: list[str] = []
    for name, field in models.VMRayClusterSpec.model_fields.items():
        key = _field_name(name, models.VMRayClusterSpec)
        if key == SCALING_FIELD:
            continue
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            paths += [f"spec.{key}.{_field_name(sub, nested)}" for sub in nested.model_fields]
        else:
            paths.append(f"spec.{key}")
    return paths


def guarded_paths() -> list[str]:
    return [*guarded_spec_fields(), *GUARDED_METADATA, GUARDED_STATUS]


def unchanged(path: str) -> str:
    """CEL: the field at path is the same in the new and the old object; a field absent from both is the
    same, and a field (or a parent of it) present in only one is a change."""
    parts = path.split(".")
    expression = f"object.{path} == oldObject.{path}"
    for depth in range(len(parts), 0, -1):
        prefix = ".".join(parts[:depth])
        expression = f"has(object.{prefix}) == has(oldObject.{prefix}) && (!has(object.{prefix}) || ({expression}))"
    return expression


def refusal(path: str) -> str:
    return (
        f"a VMRayCluster's own ServiceAccount ({service_account_name('<cluster>')}) may change only "
        f"spec.{SCALING_FIELD} of its own VMRayCluster, not {path}"
    )


def policy() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                # Equivalent: a request through another version of the API is converted to this one first.
                "matchPolicy": "Equivalent",
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "operations": ["UPDATE"],
                        "resources": [PLURAL, f"{PLURAL}/status"],
                    }
                ],
            },
            "matchConditions": [{"name": "the-clusters-own-service-account", "expression": MATCH_OWN_ACCOUNT}],
            "validations": [
                {"expression": unchanged(path), "message": refusal(path), "reason": "Forbidden"}
                for path in guarded_paths()
            ],
        },
    }


def binding() -> dict[str, Any]:
    """In force in every namespace."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
    }


def documents() -> list[dict[str, Any]]:
    return [policy(), binding()]


def render() -> str:
    return generated_yaml(*documents())
