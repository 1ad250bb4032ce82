"""Rendered user-data is accepted by cloud-init's own schema; broken user-data is not."""

from __future__ import annotations

import base64

import pytest

from tests.support.specs import context, sample_spec
from vmray_operator.local.cloudinit_schema import validate_user_data
from vmray_operator.render.desired import desired_state

WORKERS = {"test-ray-w-aaaaaaaa": "ray.worker.default"}


@pytest.mark.parametrize("with_hash", [True, False])
def test_every_rendered_user_data_is_valid_cloud_config(with_hash: bool) -> None:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    if not with_hash:
        spec.common_node_config.vm_password_salt_hash = None
    spec.common_node_config.initialization_commands = ["apt-get update", "echo 'a: b' > /tmp/x"]
    desired = desired_state(context(spec))
    assert len(desired.secrets) == 2
    for secret in desired.secrets.values():
        user_data = base64.b64decode(secret["data"]["user-data"]).decode()
        assert validate_user_data(user_data) == []


@pytest.mark.parametrize(
    ("user_data", "problem"),
    [
        ("#cloud-config\nruncmd: {a: 1}\n", "runcmd"),
        ("#cloud-config\nwrite_files:\n- content: x\n", "write_files.0: 'path' is a required property"),
        ("#cloud-config\nusers: 5\n", "users"),
        ("runcmd: []\n", "#cloud-config"),
        ("#cloud-config\nruncmd: [\n", "not valid YAML"),
    ],
)
def test_broken_user_data_is_refused_naming_the_key(user_data: str, problem: str) -> None:
    problems = validate_user_data(user_data)
    assert problems
    assert any(problem in p for p in problems), problems
