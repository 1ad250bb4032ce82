"""Fixtures of the packaging tests: the pinned Carvel tools, an OCI registry on loopback, and the package
as `make carvel` builds it (ci/scripts/build-carvel.sh)."""

from __future__ import annotations

import functools
import io
import os
import subprocess
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmray_operator.api import admission
from vmray_operator.local import processes
from vmray_operator.local.tools import tool_path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "carvel" / "config"
SAMPLE_VALUES = ROOT / "carvel" / "values-sample.yaml"
CRD = ROOT / "crds" / "vmray.broadcom.com_vmrayclusters.yaml"
POLICY = ROOT / "crds" / admission.POLICY_FILE
BUILD_SCRIPT = ROOT / "ci" / "scripts" / "build-carvel.sh"
VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def run(
    *argv: str | Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Runs a command; a failure shows its output."""
    result = subprocess.run(
        [str(a) for a in argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def tool(name: str) -> str:
    return str(tool_path(name))


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def ytt(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """ytt over the package's templates, the generated CRD and admission policy: the files of the bundle's config/."""
    return run(tool("ytt"), "-f", CONFIG, "-f", CRD, "-f", POLICY, *args, check=check)


def render(*args: str | Path) -> list[dict[str, Any]]:
    """What kapp-controller renders for an install in SERVICE_NAMESPACE, with args as the install's values."""
    return documents(ytt(*install_values(package_template(), SERVICE_NAMESPACE), *args).stdout)


# The namespace vSphere makes for the service on a Supervisor, where it installs the package.
SERVICE_NAMESPACE = "svc-vmray-domain-c8"
PACKAGE_TEMPLATES = ROOT / "carvel" / "package"


@functools.cache
def package_template() -> dict[str, Any]:
    """The Package's template spec (carvel/package, rendered with stand-in build values)."""
    openapi = run(tool("ytt"), "-f", CONFIG, "--data-values-schema-inspect", "-o", "openapi-v3").stdout
    rendered = run(
        tool("ytt"),
        "-f",
        PACKAGE_TEMPLATES,
        "--data-value",
        f"version={VERSION}",
        "--data-value",
        "releasedAt=2026-01-01T00:00:00Z",
        "--data-value",
        "releaseNotes=notes",
        "--data-value",
        "bundle=registry.example/vmray-operator-bundle@sha256:" + "0" * 64,
        "--data-value",
        f"valuesOpenAPI={openapi}",
    ).stdout
    (package,) = [doc for doc in documents(rendered) if doc["kind"] == "Package"]
    spec: dict[str, Any] = package["spec"]["template"]["spec"]
    return spec


def install_values(template: dict[str, Any], namespace: str, name: str = "vmray-operator") -> list[str]:
    """ytt arguments for the values kapp-controller gives the package's ytt step from its downward API, for a
    PackageInstall `name` in `namespace`: a values file, as kapp-controller writes one, before the install's own
    values files (which come after, and win)."""
    metadata = {"metadata.namespace": namespace, "metadata.name": name}
    (ytt_step,) = [step["ytt"] for step in template["template"] if "ytt" in step]
    values: dict[str, Any] = {}
    for source in ytt_step.get("valuesFrom", []):
        for item in source.get("downwardAPI", {}).get("items", []):
            *parents, leaf = item["name"].split(".")
            target = values
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = metadata[item["fieldPath"]]
    path = _values_dir() / f"downward-api-{namespace}-{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--data-values-file", str(path)]


@functools.cache
def _values_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="vmray-install-values-"))


def schema_openapi() -> dict[str, Any]:
    """What ytt derives from the values schema (the Package's valuesSchema must equal it)."""
    out = run(tool("ytt"), "-f", CONFIG, "--data-values-schema-inspect", "-o", "openapi-v3").stdout
    schema: dict[str, Any] = yaml.safe_load(out)["components"]["schemas"]["dataValues"]
    return schema


@dataclass(frozen=True)
class Registry:
    address: str  # 127.0.0.1:<port>


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real OCI registry on loopback (go-containerregistry's `crane registry serve`), in memory."""
    state_dir = tmp_path_factory.mktemp("registry")
    processes.start(state_dir, "registry", [tool("crane"), "registry", "serve", "--address", "127.0.0.1:0"])
    log = state_dir / "logs" / "registry.log"
    deadline = time.monotonic() + 30  # a busy 2-core machine
    port = ""
    while not port and time.monotonic() < deadline:
        text = log.read_text()
        if "serving on port " in text:
            port = text.split("serving on port ", 1)[1].split()[0]
        else:
            time.sleep(0.05)
    if not port:
        processes.stop(state_dir, "registry")
        pytest.fail(f"the loopback registry did not start: {log.read_text()}")
    yield Registry(f"127.0.0.1:{port}")
    processes.stop(state_dir, "registry")


@dataclass(frozen=True)
class Build:
    out: Path
    registry: Registry
    carvel_registry: str  # what the Package refers to
    operator_image: str  # the tag kbld resolved

    @property
    def bundle(self) -> Path:
        return self.out / "bundle"

    @property
    def package_file(self) -> Path:
        return self.out / f"vmray-operator-{VERSION}.yaml"

    @property
    def digest(self) -> str:
        return (self.out / "bundle.digest").read_text().strip()

    def package_documents(self) -> dict[str, dict[str, Any]]:
        return {doc["kind"]: doc for doc in documents(self.package_file.read_text())}


def stand_in_image(registry: Registry, workdir: Path) -> str:
    """No Docker engine runs here: a one-layer image stands in for the operator image, so that kbld
    resolves a real tag to a real digest as it does for the image built from the Dockerfile."""
    layer = workdir / "stand-in-layer.tar"
    note = b"stand-in for the vmray-operator image in the packaging tests\n"
    with tarfile.open(layer, mode="w") as tar:
        info = tarfile.TarInfo("STAND-IN")
        info.size = len(note)
        tar.addfile(info, io.BytesIO(note))
    reference = f"{registry.address}/vmray-operator:{VERSION}"
    run(tool("crane"), "append", "--new_layer", layer, "--new_tag", reference)
    return reference


def build_package(out: Path, registry: Registry, operator_image: str, push: bool) -> Build:
    carvel_registry = f"{registry.address}/vmray"
    env = {"CARVEL_REGISTRY": carvel_registry, "OPERATOR_IMAGE": operator_image, "PUSH": "1" if push else ""}
    run("bash", BUILD_SCRIPT, out, env=env)
    return Build(out, registry, carvel_registry, operator_image)


@pytest.fixture(scope="session")
def package_build(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Build:
    """`make carvel-push` against the loopback registry: bundle, Package file, sample values, and the
    bundle pushed where the Package says it is."""
    image = stand_in_image(registry, tmp_path_factory.mktemp("stand-in"))
    return build_package(tmp_path_factory.mktemp("carvel"), registry, image, push=True)
