"""Command line: `vmray-operator run` (the operator), `local up|down|status` (the local cloud) and
`simulator` (the VM Operator simulator in the foreground)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import prometheus_client

from vmray_operator.local import cloud, controlplane, processes, vmop_crds
from vmray_operator.local.simulator import SimulatorConfig
from vmray_operator.logs import configure_logging


def _state_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("VMRAY_LOCAL_DIR", ".local-cloud")).resolve()


def _local_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    versions = tuple(args.vmop_versions.split(","))
    local = cloud.up(_state_dir(args.dir), vmop_versions=versions, simulator=args.simulator or None)
    if args.simulator == "ray":
        print("  every VM is a network namespace running a real Ray node")
    print(f"local cloud up in {time.monotonic() - started:.1f} s")
    print(f"  API server:  {local.endpoints.server}")
    print(f"  kubeconfig:  {local.kubeconfig}")
    print(f"  simulator:   {args.simulator or 'not started'}")
    print(f"  try:         kubectl --kubeconfig {local.kubeconfig} get vmi -n {cloud.DEMO_NAMESPACE}")
    return 0


def _local_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args.dir)
    leftovers = cloud.down(state_dir)
    if leftovers:
        print(f"removed leftovers of a simulator that did not clean up: {', '.join(leftovers)}")
    print(f"local cloud in {state_dir} stopped")
    return 0


def _local_status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args.dir)
    running = processes.recorded(state_dir)
    endpoints = controlplane.load_endpoints(state_dir)
    if not running:
        print(f"no local cloud is running in {state_dir}")
        return 1
    for name, pid in running.items():
        print(f"{name:<24} pid {pid}")
    if endpoints:
        print(f"API server: {endpoints.server}\nkubeconfig: {controlplane.kubeconfig_path(state_dir)}")
    return 0


def _simulator(args: argparse.Namespace) -> int:
    from vmray_operator.kube.client import Kube
    from vmray_operator.local.hypervisor import FakeHypervisor, Hypervisor, RayHypervisor
    from vmray_operator.local.simulator import run

    hypervisor: Hypervisor = FakeHypervisor()
    if args.mode == "ray":
        hypervisor = RayHypervisor(Path(args.state_dir).resolve(), args.vm_network, args.drain_timeout, args.api_server)
    kube = Kube.from_kubeconfig(args.kubeconfig)
    config = SimulatorConfig(
        api_version=args.vmop_version,
        create_delay=args.create_delay,
        power_delay=args.power_delay,
        ip_delay=args.ip_delay,
        delete_delay=args.delete_delay,
        lb_delay=args.lb_delay,
        vm_network=args.vm_network,
        lb_network=args.lb_network,
    )
    asyncio.run(run(kube, config, hypervisor))
    return 0


def _run(args: argparse.Namespace) -> int:
    from vmray_operator.config import Settings
    from vmray_operator.kube.client import Kube
    from vmray_operator.main import run_operator

    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.metrics_address)
    kube = Kube.from_kubeconfig(args.kubeconfig)
    asyncio.run(run_operator(kube, Settings.from_env(), liveness_endpoint=args.liveness or None))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from vmray_operator.local import demo

    state_dir = _state_dir(None)
    return demo.up(state_dir) if args.demo_command == "up" else demo.down(state_dir)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="vmray-operator", description=__doc__)
    main.add_argument("--log-level", default=os.environ.get("VMRAY_LOG_LEVEL", "INFO"))
    main.add_argument("--log-format", choices=["text", "json"], default=os.environ.get("VMRAY_LOG_FORMAT", "text"))
    commands = main.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="the local cloud: a real control plane and a VM Operator simulator")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = local_commands.add_parser("up", help="start the control plane, install CRDs, start the simulator")
    up.add_argument("--dir", help="state directory (default $VMRAY_LOCAL_DIR or ./.local-cloud)")
    up.add_argument("--simulator", default="fake", help="simulator mode, or '' for none (default fake)")
    up.add_argument(
        "--vmop-versions",
        default=",".join(vmop_crds.SUPPORTED_VERSIONS),
        help="VM Operator API versions to serve, storage version first",
    )
    up.set_defaults(func=_local_up)
    for name, func, text in (
        ("down", _local_down, "stop everything the local cloud started"),
        ("status", _local_status, "show what is running"),
    ):
        sub = local_commands.add_parser(name, help=text)
        sub.add_argument("--dir", help="state directory (default $VMRAY_LOCAL_DIR or ./.local-cloud)")
        sub.set_defaults(func=func)

    demo = commands.add_parser("demo", help="the main job: local cloud, operator, sample cluster, Ray job")
    demo.add_argument("demo_command", choices=["up", "down"])
    demo.set_defaults(func=_demo)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument("--kubeconfig", help="default: in-cluster, else $KUBECONFIG or ~/.kube/config")
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint URL, or '' for none (default %(default)s)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("VMRAY_METRICS_PORT", "9090")),
        help="port of the Prometheus /metrics endpoint, 0 for none (default %(default)s)",
    )
    run.add_argument(
        "--metrics-address",
        default=os.environ.get("VMRAY_METRICS_ADDRESS", "0.0.0.0"),
        help="address the /metrics endpoint listens on (default %(default)s: every interface, as in a pod)",
    )
    run.set_defaults(func=_run)

    sim = commands.add_parser("simulator", help="run the VM Operator simulator in the foreground")
    sim.add_argument("--kubeconfig", required=True)
    sim.add_argument("--mode", default="fake", choices=["fake", "ray"])
    sim.add_argument("--vmop-version", default="v1alpha2")
    sim.add_argument("--state-dir", default=".local-cloud/simulator", help="VM disks and guest logs (ray mode)")
    sim.add_argument("--vm-network", default=SimulatorConfig.vm_network)
    sim.add_argument("--lb-network", default=SimulatorConfig.lb_network)
    sim.add_argument("--drain-timeout", type=float, default=45.0, help="seconds a powered-off Ray node may drain")
    sim.add_argument(
        "--api-server",
        help="host:port of the API server to forward to from the VMs' gateway, port 6443 (ray mode)",
    )
    defaults = SimulatorConfig()
    for name in ("create_delay", "power_delay", "ip_delay", "delete_delay", "lb_delay"):
        sim.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=getattr(defaults, name),
            help="seconds (default %(default)s)",
        )
    sim.set_defaults(func=_simulator)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
