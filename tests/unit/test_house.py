"""The house rules the code keeps: data flows one way between the layers, functions stay short, and the API
contract is spelled in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from vmray_operator.api import contract

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "vmray_operator"
MAX_FUNCTION_LINES = 60


def _imports(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


# (layer, modules it may never import): pure layers reach no API and no Ray; kube/ plans nothing; the local cloud
# stands apart from the operator's planners (it shares the API contract, the API client, certificates, and the
# layout of a node's files).
FORBIDDEN = [
    (
        "reconcile",
        (
            "vmray_operator.kube",
            "vmray_operator.controller",
            "vmray_operator.ray.client",
            "kopf",
            "aiohttp",
            "kubernetes",
        ),
    ),
    (
        "render",
        (
            "vmray_operator.kube",
            "vmray_operator.controller",
            "vmray_operator.reconcile",
            "vmray_operator.ray",
            "kopf",
            "aiohttp",
            "kubernetes",
        ),
    ),
    ("kube", ("vmray_operator.reconcile", "vmray_operator.render", "vmray_operator.controller")),
    ("ray", ("vmray_operator.kube", "vmray_operator.reconcile", "vmray_operator.render", "vmray_operator.controller")),
    ("local", ("vmray_operator.reconcile", "vmray_operator.controller", "vmray_operator.handlers")),
]


@pytest.mark.parametrize(("layer", "forbidden"), FORBIDDEN, ids=[layer for layer, _ in FORBIDDEN])
def test_imports_run_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in _files(layer)
        for module in sorted(_imports(path))
        if any(module == f or module.startswith(f"{f}.") for f in forbidden)
    ]
    assert not wrong


def test_the_local_cloud_takes_of_render_only_the_layout_of_a_nodes_files() -> None:
    used = {
        module for path in _files("local") for module in _imports(path) if module.startswith("vmray_operator.render")
    }
    assert used <= {"vmray_operator.render.guest_paths"} | {
        m for m in used if m.startswith("vmray_operator.render.guest_paths.")
    }


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long


def test_the_packages_vm_operator_versions_are_the_ones_the_operator_speaks() -> None:
    schema = (ROOT / "carvel" / "config" / "values-schema.yaml").read_text()
    listed = re.search(r"one_of=\[\"\", ([^\]]*)\]\s*\n\s*apiVersion:", schema)
    assert listed is not None
    assert tuple(v.strip().strip('"') for v in listed.group(1).split(",")) == contract.SUPPORTED_VMOP_VERSIONS
    described = f"({contract.SUPPORTED_VMOP_VERSIONS[0]} to {contract.SUPPORTED_VMOP_VERSIONS[-1]})"
    assert described in schema


def test_the_api_groups_are_spelled_only_in_the_contract() -> None:
    spelled = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "contract.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"[\"'](vmray\.broadcom\.com|vmoperator\.vmware\.com)[\"'/]", line)
    ]
    assert not spelled
