"""A simulated VM's guest: what its cloud-init would run, for real, inside the VM's network namespace.

The node's Ray command and environment come from /etc/vmray/node.json in the VM's user-data (the
same data the guest's systemd unit runs from); the locally installed Ray stands in for the container."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from vmray_operator.render.guest_paths import GUEST_DIR, NODE_FILE

log = logging.getLogger("vmray.raynode")


def guest_files(user_data: str) -> dict[str, tuple[str, int]]:
    """The files cloud-init writes under GUEST_DIR: path relative to it -> (content, mode)."""
    document = yaml.safe_load(user_data) or {}
    files: dict[str, tuple[str, int]] = {}
    for entry in document.get("write_files") or []:
        path = str(entry.get("path", ""))
        if not path.startswith(GUEST_DIR + "/"):
            continue
        content = entry.get("content", "")
        if entry.get("encoding") in ("b64", "base64"):
            content = base64.b64decode(content).decode()
        files[path.removeprefix(GUEST_DIR + "/")] = (content, int(str(entry.get("permissions", "0644")), 8))
    return files


def node_runtime(files: dict[str, tuple[str, int]]) -> dict[str, Any] | None:
    """The node's Ray command and environment (node.json) among a VM's guest files; None when it has none."""
    entry = files.get(NODE_FILE.removeprefix(GUEST_DIR + "/"))
    if entry is None:
        return None
    runtime: dict[str, Any] = json.loads(entry[0])
    return runtime


def read_env_file(text: str) -> dict[str, str]:
    """KEY=value lines, as `docker run --env-file` reads them (no quoting, # starts a comment line)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value
    return env


def ray_bin_dir() -> Path:
    """Where the Ray CLI and a `python` that imports ray live: this interpreter's environment."""
    return Path(sys.executable).parent


async def _tcp_open(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class RayNode:
    RESTART_DELAY = 5.0  # the guest's systemd unit: Restart=always, RestartSec=5

    def __init__(
        self,
        vm_name: str,
        netns: str,
        address: str,
        runtime: dict[str, Any],
        home: Path,
        tmp: Path,
        files: dict[str, tuple[str, int]] | None = None,
    ) -> None:
        self.vm_name = vm_name
        self.files = files or {}  # what cloud-init writes under GUEST_DIR
        self.guest_dir = home / "guest-dir"  # the VM's GUEST_DIR, kept by the simulator outside the guest
        self.netns = netns
        self.address = address
        self.runtime = runtime
        self.home = home  # where the simulator keeps the VM's guest log (outside the guest)
        self.tmp = tmp  # the VM's /tmp; short, because Ray puts unix sockets (107 bytes at most) there
        self.process: asyncio.subprocess.Process | None = None
        self.companions: list[asyncio.subprocess.Process] = []  # started beside Ray, gone with the VM
        self.starts = 0
        self._task: asyncio.Task[None] | None = None

    def _env(self) -> dict[str, str]:
        tmp = self.tmp
        tmp.mkdir(parents=True, exist_ok=True)
        # A guest's environment is its own: nothing of the simulator's (or a test runner's) leaks in.
        env = {"LANG": "C.UTF-8", "USER": "root", "SHELL": "/bin/bash"}
        env.update(
            {
                "PATH": f"{ray_bin_dir()}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/tmp/ray/home",  # inside the VM's own directory
                "VMRAY_GUEST_TMP": str(tmp),
                "VMRAY_GUEST_HOSTNAME": self.vm_name,  # VM Operator names the guest after the VM
                "RAY_CLOUD_INSTANCE_ID": self.vm_name,
                "VMRAY_GUEST_DIR": str(self.guest_dir),
                **{str(k): str(v) for k, v in (self.runtime.get("env") or {}).items()},
            }
        )
        for path in self.runtime.get("env_files") or []:  # what `docker run --env-file` would add
            env.update(read_env_file((self.guest_dir / str(path).removeprefix(GUEST_DIR + "/")).read_text()))
        return env

    def _write_files(self) -> None:
        """cloud-init's write_files under GUEST_DIR, with their modes."""
        self.guest_dir.mkdir(parents=True, exist_ok=True)
        for relative, (content, mode) in self.files.items():
            path = self.guest_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            path.chmod(mode)

    def _in_guest(self, *argv: str) -> list[str]:
        """argv run inside the VM: its network namespace, its own hostname (the VM's name), and a mount
        namespace in which the VM's own directories are /tmp/ray and GUEST_DIR."""
        # Only /tmp/ray (where Ray keeps its sessions and sockets, one per machine) and GUEST_DIR (the files
        # cloud-init wrote) are the VM's own: the rest stays visible, since the Ray installation standing in
        # for the image may live anywhere. GUEST_DIR is read-only, as the container mounts it.
        boot = (
            'mkdir -p /tmp/ray && mount --bind "$VMRAY_GUEST_TMP" /tmp/ray && hostname "$VMRAY_GUEST_HOSTNAME" '
            f'&& mkdir -p {GUEST_DIR} && mount --bind -o ro "$VMRAY_GUEST_DIR" {GUEST_DIR} '
            '&& mkdir -p "$HOME" && cd "$HOME" && exec "$@"'
        )
        return ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts", "sh", "-c", boot, "guest", *argv]

    def _log(self) -> Any:
        return (self.home / "guest.log").open("ab")

    async def _run_commands(self, commands: list[str], what: str) -> None:
        for command in commands:
            with self._log() as log_file:
                proc = await asyncio.create_subprocess_exec(
                    *self._in_guest("bash", "-c", command),
                    env=self._env(),
                    cwd="/",  # the guest's own working directory is set inside it
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                )
                code = await proc.wait()
            if code != 0:
                raise RuntimeError(f"{what} command failed with exit code {code}: {command}")

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._boot(), name=f"boot-{self.vm_name}")

    async def _boot(self) -> None:
        """cloud-init's order: write_files, initialization commands, wait for the head, setup commands, Ray."""
        try:
            self._write_files()
            await self._run_commands(list(self.runtime.get("initialization_commands") or []), "initialization")
            head, port = self.runtime.get("head_host"), int(self.runtime.get("gcs_port") or 6379)
            while head and not await _tcp_open(head, port):
                await asyncio.sleep(1)
            await self._run_commands(list(self.runtime.get("setup_commands") or []), "setup")
            for companion in self.runtime.get("companions") or []:  # in the background, as `( ... & )` does
                with self._log() as log_file:
                    process = await asyncio.create_subprocess_exec(
                        *self._in_guest(*companion),
                        env=self._env(),
                        cwd="/",
                        stdout=log_file,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                    )
                self.companions.append(process)
            argv = list(self.runtime["ray_start"])
            if argv and argv[0] == "ray":
                argv[0] = str(ray_bin_dir() / "ray")
            while True:  # as the guest's systemd unit does: Restart=always
                with self._log() as log_file:
                    self.process = await asyncio.create_subprocess_exec(
                        *self._in_guest(*argv),
                        env=self._env(),
                        cwd="/",  # the guest's own working directory is set inside it
                        stdout=log_file,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                    )
                self.starts += 1
                role, pid = self.runtime.get("role"), self.process.pid
                log.info("started Ray %s on %s (%s, pid %d)", role, self.vm_name, self.address, pid)
                code = await self.process.wait()
                log.warning("Ray on %s exited (%s); restarting in %.0f s", self.vm_name, code, self.RESTART_DELAY)
                await asyncio.sleep(self.RESTART_DELAY)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("boot of %s failed", self.vm_name)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, pids_in_namespace: Callable[[], Awaitable[list[int]]], drain_timeout: float) -> None:
        """With a drain timeout: SIGTERM first (Ray drains the node) and wait for it. Then whatever still
        runs in the VM's namespace is killed, as a VM that is off runs nothing."""
        if self._task and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if drain_timeout > 0 and self.process and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), timeout=drain_timeout)
        for pid in await pids_in_namespace():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in [self.process, *self.companions]:
            if process and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    def remove_disk(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
