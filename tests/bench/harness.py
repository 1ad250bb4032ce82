"""A local cloud with the operator as its own process, for benchmarks: everything real but vSphere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vmray_operator.kube.client import Kube
from vmray_operator.local import cloud, controlplane, processes, samples, vmop_crds
from vmray_operator.local.controlplane import free_port


@dataclass
class Bench:
    state_dir: Path
    kubeconfig: Path
    metrics_port: int

    def operator_pid(self) -> int:
        return processes.recorded(self.state_dir)["operator"]

    def operator_memory_mib(self) -> tuple[float, float]:
        """(current RSS, peak RSS) of the operator process in MiB."""
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.operator_pid()}/status").read_text().splitlines()
            if ":" in line
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each process of the local cloud has used so far, by its name."""
        used: dict[str, float] = {}
        for name, pid in processes.recorded(self.state_dir).items():
            fields = processes.stat_fields(pid)  # utime and stime are the 14th and 15th fields of the whole line
            used[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return used

    def _metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def operator_reconciles(self) -> float:
        """The operator's count of reconciles, whatever their result."""
        series = r'^controller_runtime_reconcile_total\{controller="vmraycluster",result="[^"]*"\} ([0-9.e+]+)$'
        return sum(float(match.group(1)) for match in re.finditer(series, self._metrics(), re.M))

    def operator_requests(self) -> dict[str, float]:
        """The operator's own count of API requests, by HTTP method."""
        text = self._metrics()
        counts: dict[str, float] = {}
        series = r'^rest_client_requests_total\{code="[^"]*",host="[^"]*",method="(\w+)"\} ([0-9.e+]+)$'
        for match in re.finditer(series, text, re.M):  # summed over the answers' codes
            counts[match.group(1)] = counts.get(match.group(1), 0.0) + float(match.group(2))
        return counts


async def _prepare(kubeconfig: Path, namespaces: list[str]) -> None:
    kube = Kube.from_kubeconfig(str(kubeconfig))
    try:
        await cloud.install_crds(kube, vmop_crds.SUPPORTED_VERSIONS)
        await samples.seed_cluster(kube)
        for namespace in namespaces:
            await samples.seed_namespace(kube, namespace)
    finally:
        kube.close()


@contextlib.contextmanager
def bench_cloud(
    state_dir: Path, namespaces: list[str], simulator_args: list[str] | None = None, operator_source: Path | None = None
) -> Iterator[Bench]:
    """operator_source: another checkout's operator/ directory, whose operator then runs on this local cloud."""
    started = time.monotonic()
    controlplane.up(state_dir)
    kubeconfig = controlplane.kubeconfig_path(state_dir)
    try:
        asyncio.run(_prepare(kubeconfig, namespaces))
        print(f"control plane ready in {time.monotonic() - started:.1f} s", flush=True)
        cloud.start_simulator_process(state_dir, kubeconfig, *(simulator_args or []))
        metrics_port = free_port()
        cloud.start_operator(
            state_dir,
            kubeconfig,
            "--log-level",
            "WARNING",
            metrics_port=metrics_port,
            # The fake simulator runs no Ray.
            env={"VMRAY_PROBE_RAY": "false", **({"PYTHONPATH": str(operator_source)} if operator_source else {})},
        )
        bench = Bench(state_dir, kubeconfig, metrics_port)
        deadline = time.monotonic() + 30
        while True:
            try:
                bench.operator_requests()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield bench
    finally:
        controlplane.down(state_dir)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
