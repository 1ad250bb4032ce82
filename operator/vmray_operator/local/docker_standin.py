"""`docker` on a simulated VM (local/guest_bin/docker runs this module): what a node's rendered `docker run`,
`docker stop` and `docker rm -f` ask, with the locally installed Ray standing in for the image.

A container is the command run directly in the VM, as a process group of its own: the VM's network and IPC are
the host's of the container (--network host, --ipc host), volumes at the same path need nothing, and the
environment is only what the image and --env/--env-file give, as in a container. While it runs, the VM's
containers directory keeps its process id under its name; with the container gone, so is its name (as with
--rm, which the node's script gives). `docker pull` has nothing to fetch.
Standard library only: this starts with every docker command in a guest."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STATE_ENV = "VMRAY_GUEST_DOCKER"  # the VM's directory of running containers: a file per name, its process id
CONTAINER_HOME = "/tmp/ray/home"  # the node's own writable directory in a simulated VM
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_TIMEOUT = 10.0

_FLAGS = {"--rm", "--init", "-i", "--interactive"}
_VALUE_OPTIONS = {"--name", "--network", "--net", "--ipc", "--shm-size", "--gpus"}
_VALUE_OPTIONS |= {"--volume", "-v", "--env", "-e", "--env-file"}


class UsageError(Exception):
    """A command line the stand-in cannot run: docker's exit status 125."""


@dataclass
class RunRequest:
    image: str
    command: list[str]
    name: str | None = None
    env: list[str] = field(default_factory=list)  # --env values, in order
    env_files: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)


def image_path() -> str:
    """PATH in the container: the Ray CLI and a `python` that imports ray come first, as in Ray's image."""
    return f"{Path(sys.executable).parent}:{SYSTEM_PATH}"


def parse_run(args: list[str]) -> RunRequest:
    options: list[tuple[str, str]] = []
    index = 0
    while index < len(args) and args[index].startswith("-"):
        name, has_value, value = args[index].partition("=")
        index += 1
        if name in _FLAGS and not has_value:
            continue
        if name not in _VALUE_OPTIONS:
            raise UsageError(f"unknown flag: {name}")
        if not has_value:
            if index >= len(args):
                raise UsageError(f"flag needs an argument: {name}")
            value = args[index]
            index += 1
        options.append((name, value))
    if index >= len(args):
        raise UsageError('"docker run" requires at least 1 argument')
    request = RunRequest(image=args[index], command=args[index + 1 :])
    if not request.command:
        raise UsageError(f"no command given: the stand-in knows no default command of {request.image}")
    for name, value in options:
        if name == "--name":
            request.name = value
        elif name in ("--env", "-e"):
            request.env.append(value)
        elif name == "--env-file":
            request.env_files.append(value)
        elif name in ("--volume", "-v"):
            request.volumes.append(_same_path_volume(value))
    return request


def _same_path_volume(value: str) -> str:
    source, _, rest = value.partition(":")
    target = rest.partition(":")[0]
    if not source.startswith("/") or source != target:
        raise UsageError(f"volume {value}: the stand-in shares a VM's directory only at the same path")
    return source


def _env_entry(entry: str, client_env: dict[str, str]) -> dict[str, str]:
    key, has_value, value = entry.partition("=")
    if not key or key != key.strip() or any(c.isspace() for c in key):
        raise UsageError(f"variable {key!r} contains whitespaces or is empty")
    if has_value:
        return {key: value}
    return {key: client_env[key]} if key in client_env else {}


def read_env_file(text: str, client_env: dict[str, str]) -> dict[str, str]:
    """As docker reads --env-file: KEY=value lines as they are (no quotes, no expansion), KEY alone from the
    client's environment; blank lines and lines starting with # are skipped."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        entry = line.lstrip()
        if entry and not entry.startswith("#"):
            env.update(_env_entry(entry, client_env))
    return env


def container_env(request: RunRequest, client_env: dict[str, str]) -> dict[str, str]:
    """The image's environment, then the env files, then --env (later ones win, as in docker)."""
    env = {"PATH": image_path(), "HOME": CONTAINER_HOME, "LANG": "C.UTF-8", "HOSTNAME": socket.gethostname()}
    for path in request.env_files:
        env.update(read_env_file(Path(path).read_text(), client_env))
    for entry in request.env:
        env.update(_env_entry(entry, client_env))
    return env


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has ended


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _wait_gone(pid: int, timeout: float, record: Path | None = None) -> bool:
    """Waits until the process has ended (and, with a record, its `docker run` has cleaned up after it)."""
    deadline = time.monotonic() + timeout
    while _alive(pid) and (record is None or record.exists()):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _pid(record: Path) -> int | None:
    try:
        return int(record.read_text())
    except (OSError, ValueError):
        return None


def run(request: RunRequest, containers: Path) -> int:
    record = containers / request.name if request.name else None
    if record is not None:
        pid = _pid(record)
        if pid is not None and _alive(pid):
            print(f'docker: the container name "{request.name}" is already in use', file=sys.stderr)
            return 125
    env = container_env(request, dict(os.environ))
    Path(CONTAINER_HOME).mkdir(parents=True, exist_ok=True)
    try:
        process = subprocess.Popen(request.command, env=env, cwd=CONTAINER_HOME, start_new_session=True)
    except OSError as error:
        print(f"docker: cannot start {request.command[0]}: {error}", file=sys.stderr)
        return 127
    if record is not None:
        containers.mkdir(parents=True, exist_ok=True)
        record.write_text(str(process.pid))

    def forward(signum: int, _: object) -> None:  # docker run passes signals on to the container
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    code = process.wait()
    _kill_group(process.pid)  # what else ran in the container ends with it
    if record is not None:
        record.unlink(missing_ok=True)
    return code if code >= 0 else 128 - code


def _named(containers: Path, names: list[str]) -> list[tuple[str, Path, int | None]]:
    """Each container named: its name, its record and its main process (None, said as docker says it, for a
    container that does not exist)."""
    found = []
    for name in names:
        record = containers / name
        pid = _pid(record)
        if pid is None:
            print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
        found.append((name, record, pid))
    return found


def stop(args: list[str], containers: Path) -> int:
    timeout, names, index = DEFAULT_STOP_TIMEOUT, [], 0
    while index < len(args):
        name, has_value, value = args[index].partition("=")
        if name in ("--time", "-t", "--timeout"):
            if not has_value:
                index += 1
                value = args[index] if index < len(args) else ""
            timeout = float(value)
        elif name.startswith("-"):
            raise UsageError(f"unknown flag: {name}")
        else:
            names.append(args[index])
        index += 1
    status = 0
    for name, record, pid in _named(containers, names):
        if pid is None:
            status = 1
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # the container's main process: Ray drains the node
        if not _wait_gone(pid, timeout, record):
            _kill_group(pid)
            _wait_gone(pid, 5.0, record)
        print(name)
    return status


def remove(args: list[str], containers: Path) -> int:
    force = any(a in ("-f", "--force") for a in args)
    status = 0
    for name, record, pid in _named(containers, [a for a in args if not a.startswith("-")]):
        if pid is None:
            status = 1
            continue
        if _alive(pid):
            if not force:
                print(f"Error response from daemon: container {name} is running: stop it first", file=sys.stderr)
                status = 1
                continue
            _kill_group(pid)
            _wait_gone(pid, 5.0)
        record.unlink(missing_ok=True)
        print(name)
    return status


def _containers() -> Path:
    directory = os.environ.get(STATE_ENV)
    if not directory:
        raise UsageError(f"{STATE_ENV} is not set: the stand-in runs only in a simulated VM")
    return Path(directory)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    try:
        if command == "pull":
            print(f"docker pull {' '.join(rest)}: the local Ray installation stands in for the image")
            return 0
        if command == "run":
            return run(parse_run(rest), _containers())
        if command == "stop":
            return stop(rest, _containers())
        if command == "rm":
            return remove(rest, _containers())
        raise UsageError(f"'{command}' is not a command the local stand-in knows")
    except UsageError as error:
        print(f"docker: {error}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main())
