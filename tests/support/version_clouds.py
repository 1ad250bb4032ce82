"""One local cloud per VM Operator version, each storing that version, run side by side: a control plane with VM
Operator's CRDs, admission rules and the VMRayCluster's policy, a simulator speaking the version, and an in-process
operator pinned to it whose every VirtualMachine and VirtualMachineService creation is recorded.

Each operator runs in a thread of its own with its own event loop: kopf, stopping, cancels the tasks of the loop it
runs in, so operators sharing a loop would stop each other."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHORT_VM_DELAYS, running_operator
from vmray_operator.config import Settings
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube
from vmray_operator.local import cloud, controlplane, processes, samples, vmop_crds

Body = dict[str, Any]
NAMESPACE = "deploy-ray"  # the sample's own


class OperatorThread:
    """The operator (conftest's running_operator) in a thread with its own event loop."""

    def __init__(self, kubeconfig: Path, settings: Settings) -> None:
        self._kubeconfig, self._settings = kubeconfig, settings
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._controller: Controller | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="operator", daemon=True)

    @property
    def controller(self) -> Controller:
        assert self._controller is not None
        return self._controller

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with running_operator(self._kubeconfig, self._settings) as controller:
                self._controller = controller
                self._ready.set()
                await self._stop.wait()
        except BaseException as error:
            self._error = error
            self._ready.set()

    async def start(self) -> None:
        self._thread.start()
        if not await asyncio.to_thread(self._ready.wait, 60) or self._error is not None:
            raise RuntimeError("the operator did not start") from self._error

    async def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Runs a coroutine of the operator's (one that uses its loop) in the operator's thread."""
        assert self._loop is not None
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, 60)


@dataclass
class VersionCloud:
    version: str
    state_dir: Path
    kube: Kube
    operator: OperatorThread
    sent: dict[str, Body] = field(default_factory=dict)  # "Kind/name" -> the body the operator created it with

    @property
    def vms(self) -> r.Resource:
        return r.VIRTUAL_MACHINES.at_version(self.version)

    @property
    def services(self) -> r.Resource:
        return r.VIRTUAL_MACHINE_SERVICES.at_version(self.version)

    def simulator_errors(self) -> list[str]:
        log = self.state_dir / "simulator" / "logs" / "simulator.log"
        return [line for line in log.read_text().splitlines() if "Traceback" in line] if log.exists() else []


def _record_creations(controller: Controller, sent: dict[str, Body]) -> None:
    create = controller.kube.create

    async def recording(resource: r.Resource, body: Body, namespace: str | None = None) -> Body:
        if body.get("kind") in ("VirtualMachine", "VirtualMachineService"):
            sent[f"{body['kind']}/{body['metadata']['name']}"] = copy.deepcopy(body)
        return await create(resource, body, namespace)

    controller.kube.create = recording  # type: ignore[method-assign]


async def _start(version: str, state_dir: Path, stack: contextlib.AsyncExitStack) -> VersionCloud:
    await asyncio.to_thread(controlplane.up, state_dir)
    stack.push_async_callback(asyncio.to_thread, controlplane.down, state_dir)
    kubeconfig = controlplane.kubeconfig_path(state_dir)
    kube = Kube.from_kubeconfig(str(kubeconfig))
    stack.callback(kube.close)
    await cloud.install_crds(kube, vmop_crds.SUPPORTED_VERSIONS, version)
    await samples.seed_cluster(kube, version)
    await samples.seed_namespace(kube, NAMESPACE, version)
    simulator_dir = state_dir / "simulator"
    cloud.start_simulator_process(simulator_dir, kubeconfig, "--vmop-version", version, *SHORT_VM_DELAYS)
    stack.push_async_callback(asyncio.to_thread, processes.stop, simulator_dir, "simulator")
    settings = Settings(
        dependency_recheck=0.5,
        api_server_location="127.0.0.1:6443",
        probe_ray=False,  # the fake simulator runs no Ray
        vmop_api_version=version,
    )
    operator = OperatorThread(kubeconfig, settings)
    await operator.start()
    stack.push_async_callback(operator.stop)
    found = VersionCloud(version, state_dir, kube, operator)
    _record_creations(operator.controller, found.sent)
    return found


@contextlib.asynccontextmanager
async def version_clouds(versions: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Yields ({version: VersionCloud}, seconds the start took), every cloud started at once and, afterwards,
    stopped at once."""
    stacks = [contextlib.AsyncExitStack() for _ in versions]
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                _start(v, tmp_path_factory.mktemp(f"cloud-{v}"), stack)
                for v, stack in zip(versions, stacks, strict=True)
            ),
            return_exceptions=True,
        )
        errors = [e for e in results if isinstance(e, BaseException)]
        if errors:
            raise errors[0]  # once every start has ended, so that all that did start is stopped
        clouds = [c for c in results if isinstance(c, VersionCloud)]
        yield {c.version: c for c in clouds}, time.monotonic() - started
    finally:
        await asyncio.gather(*(stack.aclose() for stack in stacks))


def missing_fields(sent: Any, stored: Any, path: str = "") -> Iterator[str]:
    """Every place where what was sent is not what the API server stored (extra stored fields are fine)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            yield path or "."
            return
        for key, value in sent.items():
            if key not in stored:
                yield f"{path}.{key}"
            else:
                yield from missing_fields(value, stored[key], f"{path}.{key}")
    elif isinstance(sent, list):
        if not isinstance(stored, list) or len(sent) != len(stored):
            yield path
            return
        for index, (a, b) in enumerate(zip(sent, stored, strict=True)):
            yield from missing_fields(a, b, f"{path}[{index}]")
    elif sent != stored:
        yield f"{path} ({sent!r} stored as {stored!r})"
