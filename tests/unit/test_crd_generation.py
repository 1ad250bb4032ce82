"""The checked-in CRD is exactly what the models generate, and the schema is structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmray_operator.api import crd

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
