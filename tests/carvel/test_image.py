"""The operator image without a Docker engine: the Dockerfile's own install script builds the wheel
into a fresh virtualenv, and that virtualenv's entry point runs the operator against the local control
plane through a whole cluster life, with JSON logs and its liveness endpoint."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.carvel.conftest import ROOT, VERSION, run
from tests.support.clusters import delete_cluster, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import processes
from vmray_operator.local.controlplane import free_port

DOCKERFILE = ROOT / "Dockerfile"
INSTALL_SCRIPT = ROOT / "ci" / "scripts" / "install-operator.sh"
CONSTRAINTS = ROOT / "ci" / "scripts" / "operator-constraints.txt"


def test_dockerfile_is_pinned_small_and_non_root() -> None:
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base), base
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    # The build stage runs the very script this module tests; the run stage copies only its result.
    assert "RUN sh ci/scripts/install-operator.sh /src /opt/vmray-operator" in text
    assert "COPY --from=build /opt/vmray-operator /opt/vmray-operator" in text
    (user,) = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user == "65532:65532"  # numeric, not root: the Deployment's runAsUser
    assert 'ENTRYPOINT ["vmray-operator"]' in text
    assert 'CMD ["run"]' in text
    # Whatever the Dockerfile copies from the build context, .dockerignore lets through.
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.MULTILINE)
        for source in line.split()[:-1]
    }
    assert copied == allowed


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's virtualenv, made here the way the Dockerfile makes it."""
    target = tmp_path_factory.mktemp("image") / "opt" / "vmray-operator"
    # PYTHON: this interpreter (3.11, as in the image) makes the virtualenv, whatever python3 is here.
    run("sh", INSTALL_SCRIPT, ROOT, target, env={"PYTHON": sys.executable}, timeout=600)
    return target


def test_virtualenv_holds_the_wheel_and_exactly_the_pinned_dependencies(venv: Path) -> None:
    listing = run(
        venv / "bin" / "python",
        "-c",
        "import importlib.metadata as m; print('\\n'.join(f'{d.name}=={d.version}' for d in m.distributions()))",
    ).stdout.split()

    def key(requirement: str) -> str:
        name, version = requirement.split("==")
        return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"

    installed = {key(line) for line in listing}
    pinned = {key(line) for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")}
    assert f"vmray-operator=={VERSION}" in installed
    stale = "ci/scripts/operator-constraints.txt is stale: LOCK=1 ci/scripts/install-operator.sh . /tmp/v"
    assert installed - {f"vmray-operator=={VERSION}"} == pinned, stale
    assert not any(k.startswith(("pip==", "setuptools==")) for k in installed)
    # The code that runs is the installed wheel, not this source tree.
    location = run(venv / "bin" / "python", "-c", "import vmray_operator; print(vmray_operator.__file__)").stdout
    assert location.startswith(str(venv)), location


@pytest.fixture
def operator_process(venv: Path, kubeconfig: Path, simulator: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The installed entry point as the image runs it (`vmray-operator run`), settings from the
    environment as the Deployment sets them; liveness on loopback, metrics off (they bind every address)."""
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    argv = [
        str(venv / "bin" / "vmray-operator"),
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--liveness",
        liveness,
        "--metrics-port",
        "0",
    ]
    env = {
        "VMRAY_LOG_FORMAT": "json",
        "VMRAY_LOG_LEVEL": "INFO",
        "VMRAY_PROBE_RAY": "false",
        "VMRAY_DELETION_TIMEOUT": "30",
        "VMRAY_DEPENDENCY_RECHECK": "0.5",
        "PYTHONPATH": "",
    }
    processes.start(tmp_path, "operator", argv, env=env)
    yield liveness, tmp_path / "logs" / "operator.log"
    processes.stop(tmp_path, "operator")


@pytest.mark.simulator
async def test_installed_entry_point_runs_a_cluster_through_its_life(
    operator_process: tuple[str, Path], kube: Kube, namespace: str
) -> None:
    liveness, log = operator_process

    def answers() -> bool:
        try:
            with urllib.request.urlopen(liveness, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    async def alive() -> bool:
        return await asyncio.to_thread(answers)

    await wait_for(alive, timeout=60, what=f"the operator's liveness endpoint {liveness}; log: {log}")
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "image-ray"), namespace)
    cluster = await wait_condition(kube, namespace, "image-ray", "Ready")
    assert cluster["status"]["ready_workers"] == 2
    await delete_cluster(kube, namespace, "image-ray")

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line that is not JSON: {line!r}")
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    # (kopf may log a retried 429 while a fresh API server warms its watch caches; that is not ours.)
    errors = [e for e in entries if e["level"] in ("ERROR", "CRITICAL") and e["logger"].startswith("vmray")]
    assert not errors
    assert not [e for e in entries if "exception" in e]
