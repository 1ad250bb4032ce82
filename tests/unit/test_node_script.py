"""The rendered node script, run with bash, with stand-ins for docker (which runs the container's command
line here), Ray and vmware-rpctool: the outcome of the node's commands reaches VM Operator as the guestinfo
value it shows as the VM's GuestBootstrap condition, a failure as much as a success."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.specs import context, head_of, sample_spec
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
    "ray": "exit 0",
    "vmware-rpctool": 'printf \'%s\\n\' "$1" >> "$RPC_LOG"',
}


def _files(setup_commands: list[str]) -> dict[str, str]:
    """The head's files, for a head whose container runs only the user's setup commands."""
    spec = sample_spec(enable_tls=False, enable_token_auth=False, autoscaling={"enabled": False})
    spec.head_node.setup_commands = setup_commands
    desired = desired_state(context(spec))
    name = head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    document = yaml.safe_load(base64.b64decode(desired.secrets[name]["data"]["user-data"]))
    return {f["path"]: f["content"] for f in document["write_files"]}


def _run_node(directory: Path, setup_commands: list[str], **env: str) -> tuple[int, list[str]]:
    """The node script and the setup script with the VM's directories moved into directory; the exit status
    and what the node told VM Operator, in order."""
    files = _files(setup_commands)
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
    log = directory / "rpc.log"
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "RPC_LOG": str(log),
        "OUTCOME": str(state / "setup.condition"),
        "OUTCOME_MODE": str(directory / "outcome.mode"),
        **env,
    }
    result = subprocess.run(
        [str(directory / "node.sh")], env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    reported = log.read_text().splitlines() if log.exists() else []
    prefix = f"info-set {BOOTSTRAP_CONDITION_KEY} "
    assert all(line.startswith(prefix) for line in reported), reported
    return result.returncode, [line.removeprefix(prefix) for line in reported]


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
