"""Command line: `vmray-operator run` (the operator), `local up|down|status` (the local cloud) and
`simulator` (the VM Operator simulator in the foreground). --log-level, --log-format, --debug and --version go
before or after a command; an error is one line on stderr (--debug: its traceback) and exit status 1."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import prometheus_client

from vmray_operator.build_info import build_info
from vmray_operator.local import cloud, controlplane, processes, vmop_crds
from vmray_operator.local.simulator import SimulatorConfig
from vmray_operator.logs import configure_logging

PROG = "vmray-operator"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _state_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("VMRAY_LOCAL_DIR", ".local-cloud")).resolve()


def _local_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    versions = tuple(args.vmop_versions.split(","))
    local = cloud.up(_state_dir(args.dir), vmop_versions=versions, simulator=args.simulator or None)
    told = ["  every VM is a network namespace running a real Ray node"] if args.simulator == "ray" else []
    told += [
        f"local cloud up in {time.monotonic() - started:.1f} s",
        f"  API server:  {local.endpoints.server}",
        f"  kubeconfig:  {local.kubeconfig}",
        f"  simulator:   {args.simulator or 'not started'}",
        f"  try:         kubectl --kubeconfig {local.kubeconfig} get vmi -n {cloud.DEMO_NAMESPACE}",
    ]
    print("\n".join(told))
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
        api_version=args.vmop_version or asyncio.run(vmop_crds.storage_version(kube)),
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

    kube = Kube.from_kubeconfig(args.kubeconfig)  # a bad kubeconfig fails before any port is opened
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.metrics_address)
    asyncio.run(run_operator(kube, Settings.from_env(), liveness_endpoint=args.liveness or None))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from vmray_operator.local import demo

    state_dir = _state_dir(None)
    return demo.up(state_dir) if args.demo_command == "up" else demo.down(state_dir)


class _Version(argparse.Action):
    """--version: reads the installed package's metadata only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=kwargs.get("help"))

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(build_info().describe())
        parser.exit()


def _global_options(at_top: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. Only the top level has defaults, so that a
    command's parser leaves what was given before the command as it is."""
    options = argparse.ArgumentParser(add_help=False)

    def default(value: object) -> dict[str, Any]:
        return {"default": value if at_top else argparse.SUPPRESS}

    options.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="DEBUG, INFO, WARNING or ERROR (default $VMRAY_LOG_LEVEL, else INFO; DEBUG with --debug)",
        **default(None),
    )
    options.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (readable lines) or json (one object per line) (default $VMRAY_LOG_FORMAT, else text)",
        **default(os.environ.get("VMRAY_LOG_FORMAT", "text")),
    )
    options.add_argument(
        "--debug",
        action="store_true",
        help="log at DEBUG level, and show an error's traceback",
        **default(False),
    )
    options.add_argument("--version", action=_Version, help="show the version and the versions it was built with")
    return options


Commands = Any  # argparse's subparsers action, whose type argparse keeps private
STATE_DIR_HELP = "state directory (default $VMRAY_LOCAL_DIR or ./.local-cloud)"


def _local_parsers(commands: Commands, anywhere: list[argparse.ArgumentParser]) -> None:
    local = commands.add_parser(
        "local", parents=anywhere, help="the local cloud: a real control plane and a VM Operator simulator"
    )
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = local_commands.add_parser(
        "up", parents=anywhere, help="start the control plane, install CRDs, start the simulator"
    )
    up.add_argument("--dir", help=STATE_DIR_HELP)
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
        sub = local_commands.add_parser(name, parents=anywhere, help=text)
        sub.add_argument("--dir", help=STATE_DIR_HELP)
        sub.set_defaults(func=func)


def _run_parser(commands: Commands, anywhere: list[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", parents=anywhere, help="run the operator")
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


def _simulator_parser(commands: Commands, anywhere: list[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser("simulator", parents=anywhere, help="run the VM Operator simulator in the foreground")
    sim.add_argument("--kubeconfig", required=True)
    sim.add_argument("--mode", default="fake", choices=["fake", "ray"])
    sim.add_argument("--vmop-version", default="", help="default: the version VM Operator's CRDs store")
    sim.add_argument("--state-dir", default=".local-cloud/simulator", help="VM disks and guest logs (ray mode)")
    sim.add_argument("--vm-network", default=SimulatorConfig.vm_network)
    sim.add_argument("--lb-network", default=SimulatorConfig.lb_network)
    sim.add_argument("--drain-timeout", type=float, default=45.0, help="seconds a powered-off Ray node may drain")
    sim.add_argument(
        "--api-server",
        help="host:port of the API server to forward to from the VMs' gateway, ports 443 and 6443 (ray mode)",
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


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog=PROG, description=__doc__, parents=[_global_options(at_top=True)])
    anywhere = [_global_options(at_top=False)]
    commands = main.add_subparsers(dest="command", required=True)
    _local_parsers(commands, anywhere)
    demo = commands.add_parser(
        "demo", parents=anywhere, help="the main job: local cloud, operator, sample cluster, Ray job"
    )
    demo.add_argument("demo_command", choices=["up", "down"])
    demo.set_defaults(func=_demo)
    _run_parser(commands, anywhere)
    _simulator_parser(commands, anywhere)
    return main


def _log_level(args: argparse.Namespace) -> str:
    if args.log_level:
        return str(args.log_level)
    return "DEBUG" if args.debug else os.environ.get("VMRAY_LOG_LEVEL", "INFO")


def _one_line(error: BaseException) -> str:
    words = " ".join(str(error).split())
    return words or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        configure_logging(_log_level(args), args.log_format)
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
