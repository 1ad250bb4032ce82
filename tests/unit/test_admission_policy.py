"""The admission policy that keeps a cluster's own token to scaling: the checked-in file is what the models
generate, every spec field but the scaling one is guarded, and the policy applies to that token only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from vmray_operator.api import admission, contract, crd
from vmray_operator.render.identity import service_account_name

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_policy_matches_the_models() -> None:
    checked_in = (ROOT / "crds" / admission.POLICY_FILE).read_text()
    assert checked_in == admission.render(), "crds/ drifted from api/models.py: run `make generate`"


def _spec_properties() -> dict[str, Any]:
    schema = crd.vmraycluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    properties: dict[str, Any] = schema["properties"]["spec"]["properties"]
    return properties


def test_every_spec_field_but_the_desired_workers_is_guarded() -> None:
    """Read from the CRD's schema, apart from how the policy walks the models: a field is guarded itself, or
    every field inside it is."""
    guarded = set(admission.guarded_paths())
    unguarded = []
    for name, schema in _spec_properties().items():
        if name == "autoscaler_desired_workers":
            assert not any(p.startswith(f"spec.{name}") for p in guarded)
            continue
        inner = schema.get("properties", {})
        if f"spec.{name}" not in guarded and not (inner and {f"spec.{name}.{sub}" for sub in inner} <= guarded):
            unguarded.append(name)
    assert not unguarded
    assert {"metadata.labels", "metadata.annotations", "metadata.finalizers", "metadata.ownerReferences"} <= guarded


def test_each_rule_compares_its_field_and_names_it() -> None:
    validations = admission.policy()["spec"]["validations"]
    assert len(validations) == len(admission.guarded_paths())
    for path, rule in zip(admission.guarded_paths(), validations, strict=True):
        assert f"object.{path} == oldObject.{path}" in rule["expression"]
        # has()-safe: every part of the path is looked for before it is read
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            assert f"has(object.{prefix}) == has(oldObject.{prefix})" in rule["expression"]
        assert rule["message"].endswith(
            f"may change only spec.autoscaler_desired_workers of its own VMRayCluster, not {path}"
        )
        assert rule["expression"].count("(") == rule["expression"].count(")")
        assert rule["reason"] == "Forbidden"


def _evaluate_concatenation(expression: str, variables: dict[str, str]) -> str:
    """The value of a CEL concatenation of string literals and variables."""
    parts = re.findall(r"'([^']*)'|([A-Za-z_][\w.]*)", expression)
    return "".join(literal if not variable else variables[variable] for literal, variable in parts)


def test_the_policy_applies_to_the_clusters_own_service_account_only() -> None:
    (condition,) = admission.policy()["spec"]["matchConditions"]
    left, right = condition["expression"].split(" == ", 1)
    assert left == "request.userInfo.username"
    username = _evaluate_concatenation(right, {"request.namespace": "deploy-ray", "request.name": "test-ray"})
    assert username == f"system:serviceaccount:deploy-ray:{service_account_name('test-ray')}"
    assert username == "system:serviceaccount:deploy-ray:test-ray-autoscaler"


def test_updates_of_vmrayclusters_are_matched_and_denied() -> None:
    policy, binding = yaml.safe_load_all((ROOT / "crds" / admission.POLICY_FILE).read_text())
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == [contract.GROUP]
    assert rule["operations"] == ["UPDATE"]
    assert set(rule["resources"]) == {contract.PLURAL, f"{contract.PLURAL}/status"}
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert "matchResources" not in binding["spec"]  # every namespace
