"""What the local cloud reads and runs in place of a VM's cloud-init, systemd, docker and vmware-rpctool, fed
with the operator's own rendered user-data."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.specs import context, head_of, sample_spec
from vmray_operator.local import docker_standin, rpctool_standin
from vmray_operator.local.docker_standin import UsageError, container_env, parse_run, read_env_file
from vmray_operator.local.simulator import bootstrap_condition
from vmray_operator.local.systemd_unit import parse_unit, time_span
from vmray_operator.local.user_data import parse_user_data
from vmray_operator.render.desired import desired_state
from vmray_operator.render.guest_paths import NODE_SCRIPT, NODE_UNIT_FILE, SETUP_SCRIPT


def _head_user_data() -> str:
    desired = desired_state(context(sample_spec()))
    name = head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    return base64.b64decode(desired.secrets[name]["data"]["user-data"]).decode()


def test_user_data_gives_the_files_and_commands_cloud_init_would() -> None:
    config = parse_user_data(_head_user_data())
    files = {f.path: f for f in config.files}
    assert files[SETUP_SCRIPT].mode == 0o755
    assert files[SETUP_SCRIPT].content.startswith(b"#!/bin/bash\n")
    assert files["/etc/vmray/token.env"].mode == 0o600
    assert config.runcmd == [
        ["/etc/vmray/initialize.sh"],
        ["docker", "pull", "rayproject/ray:2.60.0"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "vmray-ray.service"],
    ]
    other = parse_user_data(
        "#cloud-config\nwrite_files:\n- path: /etc/a\n  encoding: b64\n  content: aGk=\n"
        "runcmd:\n- echo 'a string' > /tmp/x\nmounts:\n- [nfs:/export, /mnt/shared, nfs, nofail, '0', '0']\n"
    )
    assert (other.files[0].content, other.files[0].mode) == (b"hi", 0o644)
    assert other.runcmd == [["sh", "-c", "echo 'a string' > /tmp/x"]]
    assert other.mount_points == ["/mnt/shared"]


def test_the_node_unit_is_read_as_systemd_reads_it() -> None:
    files = {f.path: f.content.decode() for f in parse_user_data(_head_user_data()).files}
    unit = parse_unit(files[NODE_UNIT_FILE])
    (pre,) = unit.start_pre
    assert (pre.argv, pre.ignore_failure) == (["/usr/bin/docker", "rm", "-f", "vmray-ray"], True)
    assert (unit.start.argv, unit.start.ignore_failure) == ([NODE_SCRIPT], False)
    assert [c.argv for c in unit.stop] == [["/usr/bin/docker", "stop", "--time", "60", "vmray-ray"]]
    assert (unit.restart, unit.restart_sec, unit.timeout_stop_sec) == ("always", 5.0, 90.0)
    assert unit.restarts_after(0)
    assert not parse_unit("[Service]\nExecStart=/bin/true\nRestart=on-failure\n").restarts_after(0)
    assert [time_span(t) for t in ("5", "5s", "500ms", "1min 30s", "2h")] == [5.0, 5.0, 0.5, 90.0, 7200.0]


def test_the_rendered_docker_run_is_understood() -> None:
    files = {f.path: f.content.decode() for f in parse_user_data(_head_user_data()).files}
    script = files[NODE_SCRIPT]
    line = script[script.index("docker run ") : script.index(" &\ncontainer=")].replace("\\\n", " ")
    request = parse_run(shlex.split(line)[2:])
    assert request.name == "vmray-ray"
    assert request.image == "rayproject/ray:2.60.0"
    assert request.command[:2] == ["bash", "-c"]
    assert request.command[2].startswith(f"{SETUP_SCRIPT} && ")
    assert request.volumes == ["/etc/vmray", "/var/lib/vmray"]
    assert request.env_files == ["/etc/vmray/token.env"]
    assert "RAY_USE_TLS=1" in request.env


def test_a_containers_environment_is_the_images_and_what_run_gives_nothing_else(tmp_path: Path) -> None:
    env_file = tmp_path / "token.env"
    env_file.write_text("# the token\n\nSVC_ACCOUNT_TOKEN=abc=def 'kept'\n  INDENTED=yes\nFROM_CLIENT\nA=file\n")
    request = parse_run(["--env", "A=flag", "--env-file", str(env_file), "-e", "B", "image", "true"])
    env = container_env(request, {"FROM_CLIENT": "client", "B": "from-client", "SECRET_OF_THE_HOST": "x"})
    assert env["SVC_ACCOUNT_TOKEN"] == "abc=def 'kept'"  # as written: docker neither unquotes nor expands
    assert env["INDENTED"] == "yes"
    assert env["FROM_CLIENT"] == "client"
    assert env["A"] == "flag"  # --env wins over --env-file
    assert env["B"] == "from-client"
    assert "SECRET_OF_THE_HOST" not in env
    assert env["PATH"].startswith(f"{Path(sys.executable).parent}:")  # where Ray is, as in Ray's image
    with pytest.raises(UsageError):
        read_env_file("WITH SPACE=1\n", {})  # docker refuses it too


@pytest.mark.parametrize(
    "args",
    [
        ["--volume", "/data:/mnt/data", "image", "true"],
        ["--volume", "named:/data", "image", "true"],
        ["--detach", "image", "true"],
        ["image"],
        ["--name"],
    ],
)
def test_what_the_stand_in_cannot_do_is_refused(args: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_run(args)


def _docker(state: Path, *args: str, wait: bool = True) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "vmray_operator.local.docker_standin", *args],
        env={**os.environ, docker_standin.STATE_ENV: str(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if wait:
        process.wait(timeout=30)
    return process


def test_docker_stop_sends_the_container_sigterm_and_run_ends_with_it(tmp_path: Path) -> None:
    drained = tmp_path / "drained"
    container = f"trap 'echo drained > {drained}; exit 0' TERM; sleep 60 & wait"
    run = _docker(tmp_path, "run", "--rm", "--name", "node", "image", "bash", "-c", container, wait=False)
    deadline = time.monotonic() + 10
    while not (tmp_path / "node").exists():
        assert time.monotonic() < deadline, "the container never started"
        time.sleep(0.05)
    time.sleep(0.3)  # the container's shell sets its trap
    taken = _docker(tmp_path, "run", "--name", "node", "image", "true")
    assert taken.returncode == 125  # one container per name
    stop = _docker(tmp_path, "stop", "--time", "10", "node")
    assert stop.returncode == 0
    assert run.wait(timeout=10) == 0
    assert drained.read_text() == "drained\n"
    assert not (tmp_path / "node").exists()
    assert _docker(tmp_path, "rm", "-f", "node").returncode == 1  # gone with --rm


def test_docker_rm_force_kills_what_does_not_stop(tmp_path: Path) -> None:
    run = _docker(tmp_path, "run", "--name", "stubborn", "image", "bash", "-c", "trap '' TERM; sleep 60", wait=False)
    deadline = time.monotonic() + 10
    while not (tmp_path / "stubborn").exists():
        assert time.monotonic() < deadline, "the container never started"
        time.sleep(0.05)
    removed = _docker(tmp_path, "rm", "-f", "stubborn")
    assert removed.returncode == 0
    assert run.wait(timeout=10) == 128 + 9


def test_vmware_rpctool_keeps_what_a_guest_sets(tmp_path: Path) -> None:
    os.environ[rpctool_standin.INFO_ENV] = str(tmp_path)
    try:
        value = "false,SetupCommandFailed,setup command 1 of 2 failed with exit status 3: make all, then test"
        assert rpctool_standin.main([f"info-set guestinfo.vmservice.bootstrap.condition {value}"]) == 0
        assert rpctool_standin.read_values(tmp_path) == {"guestinfo.vmservice.bootstrap.condition": value}
        assert rpctool_standin.main(["info-set guestinfo.other"]) == 0  # an empty value
        assert rpctool_standin.main(["info-set machine.id 1"]) == 1  # only guestinfo.* is the guest's
        assert rpctool_standin.main(["info-set guestinfo.../x 1"]) == 1
    finally:
        del os.environ[rpctool_standin.INFO_ENV]


@pytest.mark.parametrize(
    ("value", "condition"),
    [
        ("false,CommandFailed,1 of 2 failed: make a, b", (False, "CommandFailed", "1 of 2 failed: make a, b")),
        (" TRUE , SetupSucceeded , all good ", (True, "SetupSucceeded", "all good")),
        ("true", (True, "True", "")),
        ("yes,Odd,not a boolean", (False, "Odd", "not a boolean")),
        # what any process of the guest may write: the reason cut to what a condition's reason may hold
        ("false,2 bad reason!,m", (False, "badreason", "m")),
        ("false,,", (False, "False", "")),
        ("false,x," + "m" * 5000, (False, "x", "m" * 1024)),
    ],
)
def test_a_guests_condition_is_read_as_vm_operator_reads_it(value: str, condition: tuple[bool, str, str]) -> None:
    assert bootstrap_condition(value) == condition
