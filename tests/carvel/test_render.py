"""The package's ytt templates: what they render with default and custom values, and how bad values fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.carvel.conftest import (
    CRD,
    POLICY,
    SAMPLE_VALUES,
    SERVICE_NAMESPACE,
    install_values,
    package_template,
    render,
    schema_openapi,
    ytt,
)

NAMESPACED = {"ServiceAccount", "Deployment"}
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
POLICY_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def by_kind_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    container = deployment(docs)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_defaults_render_every_object_the_operator_needs() -> None:
    docs = render()
    assert set(by_kind_name(docs)) == {
        ("CustomResourceDefinition", "vmrayclusters.vmray.broadcom.com"),
        ("ServiceAccount", "vmray-operator"),
        ("ClusterRole", "vmray-operator"),
        ("ClusterRoleBinding", "vmray-operator"),
        ("ClusterRole", "vmray-operator-edit"),
        ("ClusterRole", "vmray-operator-view"),
        ("Deployment", "vmray-operator"),
        ("ValidatingAdmissionPolicy", "vmray-cluster-token"),
        ("ValidatingAdmissionPolicyBinding", "vmray-cluster-token"),
    }
    for doc in docs:
        assert doc["kind"] in NAMESPACED | CLUSTER_SCOPED
        assert doc["metadata"].get("namespace") == (SERVICE_NAMESPACE if doc["kind"] in NAMESPACED else None)
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "vmray-operator"
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"][0]["namespace"] == SERVICE_NAMESPACE


def test_the_namespace_is_the_install_s_own_unless_given() -> None:
    """kapp-controller fills the namespace value from the install's namespace (its downward API); a namespace
    given in the install's values wins, as those come after."""
    flag, path = install_values(package_template(), "svc-vmray-domain-c1")
    assert flag == "--data-values-file"
    assert yaml.safe_load(Path(path).read_text()) == {"namespace": "svc-vmray-domain-c1"}
    given = render("--data-value", "namespace=ray-operators")
    assert deployment(given)["metadata"]["namespace"] == "ray-operators"
    assert SERVICE_NAMESPACE not in yaml.safe_dump_all(given)


def test_without_an_install_namespace_rendering_fails_saying_what_to_do() -> None:
    """ytt alone, or a kapp-controller before 0.39 (no downward API), fills in nothing: no object may go to a
    namespace nobody chose."""
    result = ytt(check=False)
    assert result.returncode != 0
    assert "namespace" in result.stderr
    assert "kapp-controller 0.39" in result.stderr


def test_crd_is_the_generated_one() -> None:
    generated = yaml.safe_load(CRD.read_text())
    (rendered,) = [d for d in render() if d["kind"] == "CustomResourceDefinition"]
    # The package adds its labels and keeps the CRD (and so every user's clusters) on uninstall.
    assert rendered["metadata"].pop("annotations") == {"kapp.k14s.io/delete-strategy": "orphan"}
    rendered["metadata"].pop("labels")
    assert rendered == generated


def test_admission_policy_is_the_generated_one_and_stays_on_uninstall() -> None:
    generated = list(yaml.safe_load_all(POLICY.read_text()))
    rendered = [d for d in render() if d["kind"] in POLICY_KINDS]
    for doc in rendered:
        # like the CRD: the clusters and their tokens outlive an uninstall, so the policy does too
        assert doc["metadata"].pop("annotations") == {"kapp.k14s.io/delete-strategy": "orphan"}
        assert doc["metadata"].pop("labels")["app.kubernetes.io/name"] == "vmray-operator"
    assert rendered == generated


def test_admission_policy_can_be_left_out_and_nothing_else_changes() -> None:
    without = render("--data-value-yaml", "admissionPolicy.enabled=false")
    assert not [d for d in without if d["kind"] in POLICY_KINDS]
    assert without == [d for d in render() if d["kind"] not in POLICY_KINDS]


def test_deployment_is_one_restricted_replica_with_probes_and_resources() -> None:
    docs = render()
    spec = deployment(docs)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "vmray-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()
    assert all("hostPath" not in volume for volume in pod.get("volumes", []))
    (container,) = pod["containers"]
    assert container["args"] == ["run"]
    assert container["image"] == "vmray-operator"  # mapped to the digest by .imgpkg/images.yml at install
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not security.get("privileged")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"healthz": 8080, "metrics": 9090}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert env_of(docs) == {
        "VMRAY_LOG_LEVEL": "INFO",
        "VMRAY_LOG_FORMAT": "text",
        "VMRAY_WORKERS": "16",
        "VMRAY_METRICS_PORT": "9090",
        "VMRAY_VMOP_API_VERSION": "",
        "VMRAY_API_SERVER_LOCATION": "",
        "VMRAY_API_SERVER_CA_CERT": "",
        "VMRAY_DRAIN_TIMEOUT": "120",
        "VMRAY_DELETION_TIMEOUT": "600",
        "VMRAY_PROBE_RAY": "true",
    }


def test_namespace_users_get_vmrayclusters_through_aggregation() -> None:
    objects = by_kind_name(render())
    edit = objects["ClusterRole", "vmray-operator-edit"]
    view = objects["ClusterRole", "vmray-operator-view"]
    for label in ("aggregate-to-admin", "aggregate-to-edit"):
        assert edit["metadata"]["labels"][f"rbac.authorization.k8s.io/{label}"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in view["metadata"]["labels"]
    assert {"create", "delete", "patch", "update"} <= set(edit["rules"][0]["verbs"])
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in view["rules"])


def test_custom_values_are_honoured_and_the_namespace_everywhere(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "namespace": "svc-vmray-domain-c42",
                "operator": {
                    "image": "registry.example.com/ray/vmray-operator:9.9.9",
                    "logLevel": "DEBUG",
                    "logFormat": "json",
                    "workers": 4,
                    "metricsPort": 9100,
                    "resources": {"limits": {"memory": "1Gi"}},
                },
                "vmOperator": {"apiVersion": "v1alpha3"},
                "supervisor": {"apiServerLocation": "192.168.10.2:6443", "apiServerCACert": "PEM"},
                "clusters": {"drainTimeoutSeconds": 30, "deletionTimeoutSeconds": 60, "probeRay": False},
            }
        )
    )
    docs = render("--data-values-file", values)
    for doc in docs:
        if doc["kind"] in NAMESPACED:
            assert doc["metadata"]["namespace"] == "svc-vmray-domain-c42"
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "vmray-operator", "namespace": "svc-vmray-domain-c42"}
    ]
    assert SERVICE_NAMESPACE not in yaml.safe_dump_all(docs)  # the install's own gave way

    container = deployment(docs)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/ray/vmray-operator:9.9.9"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]
    assert env_of(docs) == {
        "VMRAY_LOG_LEVEL": "DEBUG",
        "VMRAY_LOG_FORMAT": "json",
        "VMRAY_WORKERS": "4",
        "VMRAY_METRICS_PORT": "9100",
        "VMRAY_VMOP_API_VERSION": "v1alpha3",
        "VMRAY_API_SERVER_LOCATION": "192.168.10.2:6443",
        "VMRAY_API_SERVER_CA_CERT": "PEM",
        "VMRAY_DRAIN_TIMEOUT": "30",
        "VMRAY_DELETION_TIMEOUT": "60",
        "VMRAY_PROBE_RAY": "false",
    }


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"bogus": 1}, "bogus"),
        ({"operator": {"logLevels": "DEBUG"}}, "logLevels"),
        ({"operator": {"workers": "many"}}, "workers"),
        ({"clusters": {"probeRay": "yes"}}, "probeRay"),
        ({"clusters": {"drainTimeoutSeconds": -1}}, "clusters.drainTimeoutSeconds"),
        ({"operator": {"logFormat": "xml"}}, "operator.logFormat"),
        ({"operator": {"metricsPort": 8080}}, "operator.metricsPort"),
        ({"vmOperator": {"apiVersion": "v1alpha1"}}, "vmOperator.apiVersion"),
        ({"namespace": "Not_A_Namespace"}, "namespace"),
        ({"namespace": ""}, "namespace"),
        ({"admissionPolicy": {"enabled": "no"}}, "enabled"),
    ],
)
def test_bad_values_fail_at_render_time_naming_the_value(tmp_path: Path, values: dict[str, Any], named: str) -> None:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values))
    result = ytt(*install_values(package_template(), SERVICE_NAMESPACE), "--data-values-file", file, check=False)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


def test_sample_values_render_and_set_every_value() -> None:
    docs = render("--data-values-file", SAMPLE_VALUES)
    assert deployment(docs)["metadata"]["namespace"] == SERVICE_NAMESPACE  # the install's: the sample sets none

    def leaves(schema: dict[str, Any], prefix: str = "") -> set[str]:
        if schema["type"] != "object":
            return {prefix}
        return set().union(*(leaves(sub, f"{prefix}{key}.") for key, sub in schema["properties"].items()))

    def keys(values: Any, prefix: str = "") -> set[str]:
        if not isinstance(values, dict):
            return {prefix}
        return set().union(*(keys(sub, f"{prefix}{key}.") for key, sub in values.items()))

    assert keys(yaml.safe_load(SAMPLE_VALUES.read_text())) == leaves(schema_openapi()) - {"namespace."}
    assert "# namespace: " in SAMPLE_VALUES.read_text()  # shown, to be given only to install elsewhere


def test_every_value_has_a_description_and_a_default() -> None:
    def check(schema: dict[str, Any], path: str) -> None:
        assert schema.get("description"), f"{path} has no description"
        if schema["type"] == "object":
            assert schema["additionalProperties"] is False
            for key, sub in schema["properties"].items():
                check(sub, f"{path}.{key}" if path else key)
        else:
            assert "default" in schema, f"{path} has no default"

    root = schema_openapi()
    for key, sub in root["properties"].items():
        check(sub, key)
