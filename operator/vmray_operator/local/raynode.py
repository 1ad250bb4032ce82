"""A simulated VM's guest: what its cloud-init would run, for real, inside the VM's network namespace.

cloud-init's part: the files of write_files, where the guest sees them (the VM's own copies, laid read-only
over the host's directories), then runcmd in order. The simulator plays systemd for the units runcmd starts,
as their unit files say (ExecStartPre, ExecStart, ExecStop, Restart, RestartSec). Stand-ins only for what
cannot run here: `systemctl` is the simulator itself, the shared storage is not mounted, and the programs in
local/guest_bin come first on the guest's PATH: `docker` runs the container's command in the VM with the
locally installed Ray standing in for the image, `vmware-rpctool` keeps the guestinfo values a guest sets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import IO

from vmray_operator.local import docker_standin, rpctool_standin
from vmray_operator.local.systemd_unit import ServiceUnit, parse_unit
from vmray_operator.local.user_data import CloudConfig
from vmray_operator.render.guest_paths import STATE_DIR

log = logging.getLogger("vmray.raynode")

GUEST_BIN = Path(__file__).resolve().parent / "guest_bin"
UNIT_DIR = "/etc/systemd/system"
# The VM's own /tmp/ray, where Ray keeps its sessions and sockets (one per machine); the rest of /tmp is shared.
GUEST_TMP = "/tmp/ray"
GUEST_HOME = f"{GUEST_TMP}/home"


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


INITIALIZED = "cloud-init.done"  # on the VM's disk: cloud-init ran for this instance
ENABLED_UNITS = "systemd.enabled"  # on the VM's disk: the units `systemctl enable` enabled, one a line


class RayNode:
    GUEST_INFO_POLL = 0.5  # seconds between looks at the guestinfo values the guest set

    def __init__(
        self,
        vm_name: str,
        netns: str,
        address: str,
        config: CloudConfig,
        home: Path,
        tmp: Path,
        on_guest_info: Callable[[], None] | None = None,
    ) -> None:
        self.vm_name = vm_name
        self.netns = netns
        self.address = address
        self.config = config
        self.home = home  # the VM's disk and its guest log, kept by the simulator outside the guest
        self.root = home / "root"  # the VM's own files, at their guest paths below it
        self.tmp = tmp  # the VM's /tmp/ray; short, because Ray puts unix sockets (107 bytes at most) there
        self.on_guest_info = on_guest_info  # called when the guest set a guestinfo value
        self.unit: ServiceUnit | None = None  # the unit runcmd started
        self.process: asyncio.subprocess.Process | None = None  # its main process (ExecStart)
        self._processes: list[asyncio.subprocess.Process] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._boot = ""

    # -- the guest's world ------------------------------------------------------------------------------

    def _on_disk(self, guest_path: str) -> Path:
        return self.root / guest_path.lstrip("/")

    def _env(self) -> dict[str, str]:
        # A guest's environment is its own: nothing of the simulator's (or a test runner's) leaks in.
        return {
            "PATH": f"{GUEST_BIN}:{docker_standin.SYSTEM_PATH}",
            "LANG": "C.UTF-8",
            "USER": "root",
            "SHELL": "/bin/bash",
            "HOME": GUEST_HOME,  # the VM's own, not the host's
            "VMRAY_GUEST_HOSTNAME": self.vm_name,  # VM Operator names the guest after the VM
            "VMRAY_GUEST_PYTHON": sys.executable,  # runs the stand-ins
            docker_standin.STATE_ENV: str(self.home / "containers"),
            rpctool_standin.INFO_ENV: str(self.home / "guestinfo"),
        }

    def _overlay_points(self) -> list[str]:
        """Where the VM's files are laid over the host's directories: for each file, the nearest directory on
        its way that the host has (the guest sees the host's files there too, read-only, as on an image)."""
        points: set[str] = set()
        for file in self.config.files:
            if _under(file.path, GUEST_TMP) or _under(file.path, STATE_DIR):
                continue  # in the VM's own writable directories
            directory = PurePosixPath(file.path).parent
            while not Path(directory).is_dir():
                directory = directory.parent
            if str(directory) != "/":  # never over the whole host
                points.add(str(directory))
        return sorted(p for p in points if not any(_under(p, other) for other in points if other != p))

    def _boot_script(self) -> str:
        """The mount namespace of the guest's processes: the VM's files where cloud-init wrote them, /tmp/ray
        and STATE_DIR the VM's own and writable; its hostname; then the program."""
        steps = [
            f"mount -t overlay overlay -o ro,lowerdir={shlex.quote(f'{self._on_disk(p)}:{p}')} {shlex.quote(p)}"
            for p in self._overlay_points()
        ]
        for guest_dir, own in ((GUEST_TMP, self.tmp), (STATE_DIR, self._on_disk(STATE_DIR))):
            steps.append(f"mkdir -p {shlex.quote(guest_dir)} && mount --bind {shlex.quote(str(own))} {guest_dir}")
        steps += ['hostname "$VMRAY_GUEST_HOSTNAME"', 'mkdir -p "$HOME"', "cd /", 'exec "$@"']
        return " && ".join(steps)

    def _in_guest(self, *argv: str) -> list[str]:
        """argv run inside the VM: its network namespace, its own hostname (the VM's name), its mounts."""
        return [
            "ip",
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--mount",
            "--uts",
            "sh",
            "-c",
            self._boot,
            "guest",
            *argv,
        ]

    def _log(self) -> IO[bytes]:
        return (self.home / "guest.log").open("ab")

    async def _spawn(self, argv: list[str]) -> asyncio.subprocess.Process:
        program = argv[0] if argv else ""
        if program.startswith("/") and (GUEST_BIN / PurePosixPath(program).name).exists():
            argv = [str(GUEST_BIN / PurePosixPath(program).name), *argv[1:]]  # /usr/bin/docker in a unit file
        with self._log() as log_file:
            process = await asyncio.create_subprocess_exec(
                *self._in_guest(*argv),
                env=self._env(),
                cwd="/",
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self._processes = [p for p in self._processes if p.returncode is None] + [process]
        return process

    async def _run(self, argv: list[str]) -> int:
        return await (await self._spawn(argv)).wait()

    # -- cloud-init ---------------------------------------------------------------------------------------

    @property
    def booted_before(self) -> bool:
        """Whether this VM's disk holds an instance cloud-init has initialized (it runs once per instance)."""
        return (self.home / INITIALIZED).exists()

    def start(self) -> None:
        """The first boot: cloud-init writes the files and runs runcmd."""
        for stale in (self.root, self.home / "containers", self.home / "guestinfo"):  # booted from user-data
            shutil.rmtree(stale, ignore_errors=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        (self.home / INITIALIZED).write_text("")
        self._tasks.append(asyncio.create_task(self._cloud_init(), name=f"cloud-init-{self.vm_name}"))
        self._watch()

    def boot_again(self) -> None:
        """A later boot, after a power-off: cloud-init does not run again; systemd starts the enabled units. The
        VM's disk is as it was; its /tmp starts empty."""
        shutil.rmtree(self.home / "containers", ignore_errors=True)  # no container survives a power cycle
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._boot = self._boot_script()
        enabled = self.home / ENABLED_UNITS
        for name in enabled.read_text().split() if enabled.exists() else []:
            self._start_unit(name)
        self._watch()

    def _watch(self) -> None:
        if self.on_guest_info is not None:
            self._tasks.append(asyncio.create_task(self._watch_guest_info(), name=f"guestinfo-{self.vm_name}"))

    async def _cloud_init(self) -> None:
        try:
            self._write_files()
            self._boot = self._boot_script()
            for argv in self.config.runcmd:
                await self._runcmd(argv)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cloud-init of %s failed", self.vm_name)

    def _write_files(self) -> None:
        """cloud-init's write_files, with their modes, on the VM's own disk."""
        self._on_disk(STATE_DIR).mkdir(parents=True, exist_ok=True)
        for file in self.config.files:
            path = self._on_disk(file.path)
            if not path.resolve().is_relative_to(self.root.resolve()):
                log.warning("%s: not writing %s, which is outside the VM", self.vm_name, file.path)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.content)
            path.chmod(file.mode)

    async def _runcmd(self, argv: list[str]) -> None:
        """One runcmd entry; as in cloud-init's runcmd script, a failing one does not stop the next."""
        if argv[:1] == ["systemctl"]:
            self._systemctl(argv[1:])
            return
        if argv[:1] in (["mkdir"], ["mount"]) and any(a in self.config.mount_points for a in argv[1:]):
            log.info("%s: shared storage is not simulated: %s skipped", self.vm_name, shlex.join(argv))
            return
        code = await self._run(argv)
        if code != 0:
            log.warning("%s: runcmd %s exited with status %d", self.vm_name, shlex.join(argv), code)

    # -- systemd ----------------------------------------------------------------------------------------

    def _systemctl(self, args: list[str]) -> None:
        verb, names = (args[0] if args else ""), [a for a in args[1:] if not a.startswith("-")]
        if verb == "enable":  # started again at every later boot
            with (self.home / ENABLED_UNITS).open("a") as enabled:
                enabled.write("".join(f"{name}\n" for name in names))
        if verb == "start" or (verb == "enable" and "--now" in args):
            for name in names:
                self._start_unit(name)
        elif verb not in ("daemon-reload", "enable"):
            log.info("%s: systemctl %s: nothing to do in the simulator", self.vm_name, shlex.join(args))

    def _start_unit(self, name: str) -> None:
        self.unit = parse_unit(self._on_disk(f"{UNIT_DIR}/{name}").read_text())
        self._tasks.append(asyncio.create_task(self._supervise(name, self.unit), name=f"{name}-{self.vm_name}"))

    async def _supervise(self, name: str, unit: ServiceUnit) -> None:
        """systemd's part for a service: ExecStartPre, then ExecStart as its main process; started again after
        RestartSec when Restart says so."""
        try:
            while True:
                code = 1
                if await self._start_pre(unit):
                    self.process = await self._spawn(unit.start.argv)
                    log.info("started %s on %s (%s, pid %d)", name, self.vm_name, self.address, self.process.pid)
                    code = await self.process.wait()
                if not unit.restarts_after(code):
                    log.warning("%s on %s exited (%s); not restarted", name, self.vm_name, code)
                    return
                log.warning("%s on %s exited (%s); restarting in %.0f s", name, self.vm_name, code, unit.restart_sec)
                await asyncio.sleep(unit.restart_sec)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s on %s failed", name, self.vm_name)

    async def _start_pre(self, unit: ServiceUnit) -> bool:
        for command in unit.start_pre:
            if await self._run(command.argv) != 0 and not command.ignore_failure:
                return False
        return True

    async def _stop_unit(self, unit: ServiceUnit, main: asyncio.subprocess.Process) -> None:
        """ExecStop (the container gets SIGTERM and Ray drains the node), then SIGTERM to the main process."""
        for command in unit.stop:
            await self._run(command.argv)
        with contextlib.suppress(ProcessLookupError):
            main.send_signal(signal.SIGTERM)
        await main.wait()

    # -- guestinfo ----------------------------------------------------------------------------------------

    def guest_info(self) -> dict[str, str]:
        """The guestinfo values the guest set (vmware-rpctool info-set), by key."""
        return rpctool_standin.read_values(self.home / "guestinfo")

    async def _watch_guest_info(self) -> None:
        seen: dict[str, str] = {}
        while True:
            await asyncio.sleep(self.GUEST_INFO_POLL)
            current = self.guest_info()
            if current != seen and self.on_guest_info is not None:
                seen = current
                self.on_guest_info()

    # -- power off ----------------------------------------------------------------------------------------

    async def stop(self, pids_in_namespace: Callable[[], Awaitable[list[int]]], drain_timeout: float) -> None:
        """With a drain timeout (a soft power-off), the guest's systemd stops the unit first, within the drain
        timeout. Then whatever still runs in the VM's namespace is killed, as a VM that is off runs nothing."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        main, unit = self.process, self.unit
        if drain_timeout > 0 and unit is not None and main is not None and main.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_unit(unit, main), timeout=min(drain_timeout, unit.timeout_stop_sec))
        for pid in await pids_in_namespace():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self._processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    def clear_tmp(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def remove_disk(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.clear_tmp()
