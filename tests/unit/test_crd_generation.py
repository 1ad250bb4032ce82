"""The checked-in CRD is exactly what the models generate, and the schema is structural."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from vmray_operator.api import crd
from vmray_operator.api.generated import generated_files

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_crd_matches_the_models() -> None:
    checked_in = (ROOT / "crds" / crd.CRD_FILE).read_text()
    assert checked_in == crd.render(), "crds/ drifted from api/models.py: run `make generate`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_walk(value, f"{path}[{i}]"))
    return found


def test_schema_is_structural_and_documented() -> None:
    schema = crd.vmraycluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    for path, node in _walk(spec):
        assert not {"anyOf", "$ref", "allOf"} & set(node), path
        if node.get("type") == "null":
            raise AssertionError(f"null type at {path}")
    for path, node in _walk(spec["properties"], "spec"):
        if path.endswith((".items", ".additionalProperties")) or ".x-kubernetes" in path:
            continue
        if "type" in node and not path.endswith("spec"):
            assert node.get("description"), f"{path} has no description"


def test_seed_field_names_and_defaults_are_kept() -> None:
    spec = crd.vmraycluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert {
        "api_server",
        "ray_docker_image",
        "head_node",
        "worker_node",
        "common_node_config",
        "autoscaler_desired_workers",
        "enable_tls",
        "docker_config",
    } <= set(props)
    assert props["head_node"]["properties"]["port"]["default"] == 6379
    assert props["enable_tls"]["default"] is True
    common = props["common_node_config"]["properties"]
    assert {
        "vm_image",
        "storage_class",
        "vm_user",
        "vm_password_salt_hash",
        "max_workers",
        "available_node_types",
        "network",
        "idle_timeout_minutes",
        "setup_commands",
        "initialization_commands",
    } <= set(common)
    node_type = common["available_node_types"]["additionalProperties"]["properties"]
    assert {"vm_class", "min_workers", "max_workers", "resources"} <= set(node_type)


def test_generated_files_hold_no_yaml_anchors() -> None:
    for name, text in generated_files().items():
        assert text == (ROOT / "crds" / name).read_text(), f"crds/{name} drifted: run `make generate`"
        events = list(yaml.parse(text))
        assert not [e for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)], name


def test_every_object_and_the_root_fields_are_described_for_kubectl_explain() -> None:
    root = crd.vmraycluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for field in ("apiVersion", "kind", "spec", "status"):
        assert root["properties"][field]["description"], field
    assert root["properties"]["metadata"] == {"type": "object"}  # the API server refuses more
    undescribed = [
        path
        for path, node in _walk(root)
        if node.get("type") == "object" and not node.get("description") and path != ".properties.metadata"
    ]
    assert not undescribed


def test_conditions_are_a_list_map_by_type_with_timestamps() -> None:
    status = crd.vmraycluster_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]  # a map key must be there in every entry
    assert conditions["items"]["properties"]["lastTransitionTime"]["format"] == "date-time"


def _json_path(body: Any, path: str) -> Any:
    """What kubectl prints for a printer column's path: dotted fields and one [?(@.key=="value")] filter."""
    value = body
    for part in re.findall(r'\.(\w+)|\[\?\(@\.(\w+)=="([^"]*)"\)\]', path):
        field, key, wanted = part
        if field:
            value = value.get(field) if isinstance(value, dict) else None
        else:
            value = next((item for item in value or [] if item.get(key) == wanted), None)
    return value


STATUS = {
    "cluster_state": "degraded",
    "desired_workers": 3,
    "ready_workers": 2,
    "vm_service_status": {"ip": "10.214.0.3"},
    "endpoints": {"dashboard": "http://10.214.0.3:8265"},
    "ray": {"version": "2.60.0", "cpus": 6.0, "gpus": 0.0, "alive_nodes": 3},
    "conditions": [
        {"type": "HeadReady", "status": "True", "reason": "Running"},
        {"type": "Ready", "status": "False", "reason": "WorkersProvisioning"},
    ],
}


def test_kubectl_get_tells_state_why_workers_and_with_wide_what_ray_reports() -> None:
    columns = crd.vmraycluster_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    body = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": STATUS}
    shown = {c["name"]: _json_path(body, c["jsonPath"]) for c in columns}
    assert shown == {
        "State": "degraded",
        "Reason": "WorkersProvisioning",  # Ready's, not the first condition's
        "Desired-Workers": 3,
        "Available-Workers": 2,
        "Head-IP": "10.214.0.3",
        "Age": "2026-01-01T00:00:00Z",
        "Ray": "2.60.0",
        "CPUs": 6.0,
        "GPUs": 0.0,
        "Dashboard": "http://10.214.0.3:8265",
    }
    wide = {c["name"] for c in columns if c.get("priority", 0) > 0}
    assert wide == {"Ray", "CPUs", "GPUs", "Dashboard"}
    assert "Ready" not in {c["name"] for c in columns}  # a worker count is no condition
    assert all(c["description"] for c in columns)
    types = {"string", "integer", "number", "date"}
    assert all(c["type"] in types for c in columns)
