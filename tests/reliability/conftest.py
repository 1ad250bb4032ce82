"""Reliability fixtures: the operator as its own process (so it can be killed with SIGKILL and started
again), sizes that grow under VMRAY_RELIABILITY_LONG=1, and what a cluster leaves behind.

The control plane, `kube`, `namespace` and the fake `simulator` come from tests/conftest.py. The in-process
`operator` fixture is never used here: two operators would reconcile the same clusters."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import FIGURES
from tests.support.clusters import sample
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.api.contract import Body
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import cloud, processes

LONG = os.environ.get("VMRAY_RELIABILITY_LONG", "") not in ("", "0", "false", "no")
WORKER = "ray.worker.default"
STARTED_LINE = "controller started"  # logged by the operator once its watches and queue run

# Everything a cluster makes carries its label: (kind, resource) for each. The operator deletes the first
# three itself; the others go with Kubernetes' garbage collector once the cluster is gone.
LABELLED: tuple[tuple[str, r.Resource], ...] = (
    ("VirtualMachine", r.VIRTUAL_MACHINES),
    ("VirtualMachineService", r.VIRTUAL_MACHINE_SERVICES),
    ("Secret", r.SECRETS),
    ("ServiceAccount", r.SERVICE_ACCOUNTS),
    ("Role", r.ROLES),
    ("RoleBinding", r.ROLE_BINDINGS),
    ("ConfigMap", r.CONFIG_MAPS),
)
DELETED_BY_THE_OPERATOR = LABELLED[:3]


def sized(name: str, ci: int, long: int) -> int:
    """A figure of the CI-sized run, or of the long run (VMRAY_RELIABILITY_LONG=1, make test-reliability-long);
    VMRAY_RELIABILITY_<NAME> sets it outright."""
    return int(os.environ.get(f"VMRAY_RELIABILITY_{name}") or (long if LONG else ci))


def seeded_random(what: str) -> random.Random:
    """A Random whose seed is printed (and kept in the figures), so that a failing run can be repeated with
    VMRAY_RELIABILITY_SEED=<seed>."""
    seed = int(os.environ.get("VMRAY_RELIABILITY_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{what}: seed {seed} (repeat with VMRAY_RELIABILITY_SEED={seed})")
    FIGURES.append(f"{what}: seed {seed}")
    return random.Random(seed)


def small_cluster(namespace: str, name: str, min_workers: int = 1, max_workers: int = 4) -> Body:
    """The seed sample with a small worker floor (the operator seeds min_workers names on adoption)."""
    body = sample(namespace, name)
    common = body["spec"]["common_node_config"]
    common["max_workers"] = max_workers
    common["available_node_types"][WORKER].update(min_workers=min_workers, max_workers=max_workers)
    return body


class OperatorProcess:
    """`vmray-operator run` as a recorded background process of state_dir (cloud.start_operator)."""

    def __init__(self, state_dir: Path, kubeconfig: Path, env: dict[str, str]) -> None:
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.env = env
        self.starts = 0
        self.kills = 0
        self._log_offset = 0  # where the log of the latest start begins

    @property
    def log_path(self) -> Path:
        return self.state_dir / "logs" / "operator.log"

    def log(self, since_start: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset if since_start else 0)
            return log.read().decode(errors="replace")

    @property
    def pid(self) -> int | None:
        return processes.recorded(self.state_dir).get("operator")

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def start(self) -> None:
        assert not self.alive, "the operator runs already"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cloud.start_operator(self.state_dir, self.kubeconfig, "--log-level", "INFO", env=self.env)
        self.starts += 1

    async def wait_started(self, timeout: float = 60.0) -> None:
        """Until the operator of the latest start logs that its controller runs; fails if it exits first."""
        deadline = time.monotonic() + timeout
        while STARTED_LINE not in self.log(since_start=True):
            if not self.alive:
                raise AssertionError(f"the operator exited during start-up; see {self.log_path}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator did not start within {timeout:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.1)

    async def start_and_wait(self) -> None:
        self.start()
        await self.wait_started()

    async def kill(self) -> None:
        """SIGKILL to the operator's whole session: no clean-up of any kind runs."""
        pid = self.pid
        assert pid is not None, "the operator is not running"
        os.killpg(pid, signal.SIGKILL)
        while processes.is_alive(pid):
            await asyncio.sleep(0.01)
        self.kills += 1

    def stop(self) -> None:
        processes.stop(self.state_dir, "operator")

    def tracebacks(self) -> list[str]:
        """The log's tracebacks, each with the log line before it (what failed)."""
        lines = self.log().splitlines()
        return [
            "\n".join(lines[max(0, i - 1) : i + 12]) for i, line in enumerate(lines) if line.startswith("Traceback")
        ]


def operator_env(**extra: str) -> dict[str, str]:
    env = {
        "VMRAY_PROBE_RAY": "false",  # the fake simulator runs no Ray
        "VMRAY_DEPENDENCY_RECHECK": "0.5",
        "VMRAY_DELETION_TIMEOUT": "30",
        "VMRAY_DRAIN_TIMEOUT": "10",
        "VMRAY_API_SERVER_LOCATION": "127.0.0.1:6443",
        "VMRAY_LOG_FORMAT": "text",
    }
    version = os.environ.get("VMRAY_TEST_VMOP_VERSION")
    if version:
        env["VMRAY_VMOP_API_VERSION"] = version
    env.update(extra)
    return env


@pytest.fixture
async def operator_process(
    kubeconfig: Path, simulator: Path, kube: Kube, namespace: str, tmp_path: Path
) -> AsyncIterator[OperatorProcess]:
    """An operator process, not started: the test starts (and kills) it. At the end the test namespace's
    clusters are deleted while an operator runs (so the namespace can go), then it is stopped."""
    process = OperatorProcess(tmp_path / "operator", kubeconfig, operator_env())
    try:
        yield process
        if not process.alive:
            await process.start_and_wait()
        await delete_clusters(kube, namespace)
    finally:
        process.stop()
        assert processes.recorded(process.state_dir) == {}


async def delete_clusters(kube: Kube, namespace: str, timeout: float = 60.0) -> None:
    for cluster in await kube.list(r.VMRAYCLUSTERS, namespace):
        await kube.delete(r.VMRAYCLUSTERS, cluster["metadata"]["name"], namespace)

    async def gone() -> bool:
        return not await kube.list(r.VMRAYCLUSTERS, namespace)

    await wait_for(gone, timeout=timeout, what=f"every cluster of {namespace} deleted")


async def leftovers(kube: Kube, namespace: str, cluster: str) -> dict[str, list[str]]:
    """Kind -> names of the objects still labelled for cluster (an empty dict: nothing is left)."""
    selector = f"{contract.LABEL_CLUSTER}={cluster}"
    found: dict[str, list[str]] = {}
    for kind, resource in LABELLED:
        items = await kube.list(resource, namespace, selector)
        if items:
            found[kind] = sorted(item["metadata"]["name"] for item in items)
    return found


async def labelled_objects(
    kube: Kube, namespace: str, kinds: tuple[tuple[str, r.Resource], ...] = LABELLED
) -> list[str]:
    """Kind/name of every object in the namespace that carries a cluster label."""
    result: list[str] = []
    for kind, resource in kinds:
        items = await kube.list(resource, namespace, contract.LABEL_CLUSTER)
        result += [f"{kind}/{item['metadata']['name']}" for item in items]
    return sorted(result)


async def settled(probe: Callable[[], Awaitable[list[str]]], timeout: float, interval: float = 0.5) -> list[str]:
    """Polls a probe that lists problems until it lists none; returns what it still lists after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(interval)
