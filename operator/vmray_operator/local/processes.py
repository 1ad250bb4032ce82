"""Background processes of the local cloud, recorded in pid files so that another command (for
example `vmray-operator local down`) can find and stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def _pid_dir(state_dir: Path) -> Path:
    return state_dir / "pids"


def start(
    state_dir: Path, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Starts argv in its own session, logging to state_dir/logs/name.log, and records its pid."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _pid_dir(state_dir).mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    (_pid_dir(state_dir) / f"{name}.pid").write_text(str(proc.pid))
    return proc


def is_alive(pid: int) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    with contextlib.suppress(OSError):
        if stat_fields(pid)[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command (which may hold spaces and parentheses): the state first."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def recorded(state_dir: Path) -> dict[str, int]:
    """Name -> pid of every recorded process that is still alive."""
    result: dict[str, int] = {}
    directory = _pid_dir(state_dir)
    if not directory.is_dir():
        return result
    for pid_file in sorted(directory.glob("*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            if is_alive(pid):
                result[pid_file.stem] = pid
    return result


def stop(state_dir: Path, name: str, timeout: float = 15.0) -> None:
    """Stops one recorded process and its session: SIGTERM, then SIGKILL after timeout."""
    pid_file = _pid_dir(state_dir) / f"{name}.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    while is_alive(pid):
        time.sleep(0.02)
    pid_file.unlink(missing_ok=True)


def stop_all(state_dir: Path, order: Sequence[str] = (), timeouts: Mapping[str, float] | None = None) -> None:
    """Stops the named processes in order, then any other recorded one."""
    names = list(order) + [n for n in recorded(state_dir) if n not in order]
    for name in names:
        stop(state_dir, name, (timeouts or {}).get(name, 15.0))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signals the process's session group once (a second SIGTERM would interrupt a graceful stop)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
