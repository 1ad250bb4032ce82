"""The rendered node script, run with bash, with stand-ins for docker (which runs the container's command
line here), Ray and vmware-rpctool: the outcome of the node's commands reaches VM Operator as the guestinfo
value it shows as the VM's GuestBootstrap condition, a failure as much as a success."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support.specs import context, head_of, sample_spec
from tests.support.waiting import wait_until
from vmray_operator.render.desired import desired_state
from vmray_operator.render.guest_paths import (
    BOOTSTRAP_CONDITION_KEY,
    INITIALIZATION_OUTCOME,
    NODE_SCRIPT,
    SETUP_SCRIPT,
    STATE_DIR,
)

STAND_INS = {
    # the container: its command line is the last argument; the image may run it as any user
    "docker": 'stat -c %a "$OUTCOME" > "$OUTCOME_MODE"\n[ -n "$DOCKER_FAILS" ] && exit 125\nexec bash -c "${@: -1}"',
    "ray": 'echo "$@" > "$RAY_STARTED"',
    "vmware-rpctool": 'printf \'%s\\n\' "$1" >> "$RPC_LOG"',
}


WORKER = "test-ray-w-aaaaaaaa"


def _files(setup_commands: list[str], head: tuple[str, int] | None = None) -> dict[str, str]:
    """A node's files, for a node whose container runs only the user's setup commands: the head's, or with
    head (the head's address and GCS port) a worker's."""
    spec = sample_spec(enable_tls=False, enable_token_auth=False, autoscaling={"enabled": False})
    spec.head_node.setup_commands = setup_commands
    spec.worker_node.setup_commands = setup_commands
    if head is not None:
        spec.head_node.port = head[1]
        spec.autoscaler_desired_workers = {WORKER: "ray.worker.default"}
    desired = desired_state(context(spec, head_address=head[0] if head else "10.212.0.1"))
    vm = desired.workers[WORKER] if head is not None else head_of(desired)
    name = vm["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    document = yaml.safe_load(base64.b64decode(desired.secrets[name]["data"]["user-data"]))
    return {f["path"]: f["content"] for f in document["write_files"]}


def _start_node(
    directory: Path, setup_commands: list[str], head: tuple[str, int] | None = None, **env: str
) -> subprocess.Popen[str]:
    """The node script and the setup script with the VM's directories moved into directory, started."""
    files = _files(setup_commands, head)
    state = directory / "state"
    moved = {STATE_DIR: str(state), SETUP_SCRIPT: str(directory / "setup.sh")}
    for path, target in ((SETUP_SCRIPT, directory / "setup.sh"), (NODE_SCRIPT, directory / "node.sh")):
        text = files[path]
        for old, new in moved.items():
            text = text.replace(old, new)
        target.write_text(text)
        target.chmod(0o755)
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RPC_LOG": str(directory / "rpc.log"),
        "OUTCOME": str(state / "setup.condition"),
        "OUTCOME_MODE": str(directory / "outcome.mode"),
        "RAY_STARTED": str(directory / "ray.started"),
        **env,
    }
    return subprocess.Popen(
        [str(directory / "node.sh")], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _reported(directory: Path) -> list[str]:
    """What the node told VM Operator so far, in order."""
    log = directory / "rpc.log"
    reported = log.read_text().splitlines() if log.exists() else []
    prefix = f"info-set {BOOTSTRAP_CONDITION_KEY} "
    assert all(line.startswith(prefix) for line in reported), reported
    return [line.removeprefix(prefix) for line in reported]


def _run_node(directory: Path, setup_commands: list[str], **env: str) -> tuple[int, list[str]]:
    """The head's node script run to its end: the exit status and what the node told VM Operator, in order."""
    node = _start_node(directory, setup_commands, None, **env)
    node.communicate(timeout=60)
    return node.returncode, _reported(directory)


def test_a_failing_setup_command_is_reported_and_ends_the_node(tmp_path: Path) -> None:
    status, reported = _run_node(tmp_path, ["echo preparing", "echo installing  # pinned\nexit 7"])
    assert status == 7
    message = "setup command 2 of 2 failed with exit status 7: echo installing  # pinned"
    assert reported == [f"false,SetupCommandFailed,{message}"]


def test_a_setup_that_succeeds_is_reported_true_so_a_fixed_command_clears_a_failure(tmp_path: Path) -> None:
    status, reported = _run_node(tmp_path, ["echo ready"])
    assert status == 0
    assert reported == ["true,SetupSucceeded,1 of 1 setup commands succeeded"]
    assert (tmp_path / "outcome.mode").read_text() == "666\n"  # writable by the container's user


def test_an_initialization_failure_outlasts_a_setup_that_succeeds(tmp_path: Path) -> None:
    failure = "false,InitializationCommandFailed,initialization command 1 of 1 failed with exit status 100: apt-get"
    outcome = tmp_path / "state" / Path(INITIALIZATION_OUTCOME).name
    outcome.parent.mkdir()
    outcome.write_text(failure + "\n")
    status, reported = _run_node(tmp_path, ["echo ready"])
    assert status == 0
    assert reported == [failure, failure]  # at once, and again once the setup is done


@pytest.mark.parametrize("stale", ["true,SetupSucceeded,from the start before", ""])
def test_a_container_that_ends_before_its_setup_finished_is_a_failure(tmp_path: Path, stale: str) -> None:
    (tmp_path / "state").mkdir()
    if stale:  # what the previous start of the node left
        (tmp_path / "state" / "setup.condition").write_text(stale + "\n")
    status, reported = _run_node(tmp_path, ["echo ready"], DOCKER_FAILS="1")
    assert status == 125
    assert reported == [
        "false,SetupNotFinished,the Ray container exited with status 125 before its setup commands finished"
    ]


def test_a_worker_sets_up_while_the_head_starts_and_starts_ray_once_the_head_answers(tmp_path: Path) -> None:
    with socket.socket() as reserved:  # a port nothing listens on yet: the head's GCS, still starting
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
    node = _start_node(tmp_path, ["echo installing"], head=("127.0.0.1", port))
    try:
        setup_done = ["true,SetupSucceeded,1 of 1 setup commands succeeded"]
        wait_until(lambda: _reported(tmp_path) == setup_done, what="the setup reported before the head answers")
        time.sleep(1.0)  # two rounds of the wait for the head
        assert node.poll() is None
        assert not (tmp_path / "ray.started").exists()
        with socket.create_server(("127.0.0.1", port)):  # the head's GCS answers
            output, _ = node.communicate(timeout=30)
    finally:
        node.kill()
    assert node.returncode == 0, output
    assert f"waiting for the Ray head at 127.0.0.1:{port}" in output
    assert f"--address=127.0.0.1:{port}" in (tmp_path / "ray.started").read_text()
