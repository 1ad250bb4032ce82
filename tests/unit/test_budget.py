"""The user-data size budget: specs the CRD accepts can render more than a Secret holds; the message names
the node, the size, the limit and the field to shorten."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.specs import context, sample_spec
from vmray_operator.api.models import MAX_COMMAND_LENGTH, MAX_COMMANDS, VMRayClusterSpec
from vmray_operator.render import names
from vmray_operator.render.budget import USER_DATA_BUDGET, readable_size, user_data_over_budget
from vmray_operator.render.cloudinit import user_data
from vmray_operator.render.ray_node import node_runtime

HEAD_TYPE = "ray.head.default"
WORKER_TYPE = "ray.worker.default"


def _command(index: int, length: int) -> str:
    """A setup command as people write them: a heredoc that writes a config file, padded to `length`."""
    head = f"cat > /etc/app/settings-{index}.conf <<'EOF'\n# generated for the training jobs\n"
    tail = "EOF"
    lines = []
    size = len(head) + len(tail)
    row = 0
    while size < length:
        line = f'option_{row} = value with spaces and "quotes" and $HOME {row}\n'[: length - size]
        lines.append(line)
        size += len(line)
        row += 1
    command = head + "".join(lines) + tail
    assert len(command) == length
    return command


def _commands(length: int) -> list[str]:
    return [_command(index, length) for index in range(MAX_COMMANDS)]


def _rendered(spec: VMRayClusterSpec, role: str, node_type: str) -> str:
    ctx = context(spec)
    return user_data(ctx, node_runtime(ctx, role, node_type))


def _spec(**changes: Any) -> VMRayClusterSpec:
    """The sample with changes to its nested parts (head_node, worker_node, common_node_config, api_server)."""
    base = sample_spec().model_dump()
    for part, values in changes.items():
        base[part] = {**base[part], **values} if isinstance(base.get(part), dict) else values
    return VMRayClusterSpec.model_validate(base)


def test_the_sample_fits_on_every_node() -> None:
    spec = sample_spec()
    assert user_data_over_budget(_rendered(spec, names.ROLE_HEAD, HEAD_TYPE), names.ROLE_HEAD, HEAD_TYPE, spec) is None
    worker = _rendered(spec, names.ROLE_WORKER, WORKER_TYPE)
    assert user_data_over_budget(worker, names.ROLE_WORKER, WORKER_TYPE, spec) is None


def test_a_spec_at_the_crds_limits_goes_over_and_names_the_largest_field() -> None:
    ca_cert = "-----BEGIN CERTIFICATE-----\n" + ("MIIB" * 16 + "\n") * 1000
    ca_cert = ca_cert[: 65536 - len("-----END CERTIFICATE-----\n")] + "-----END CERTIFICATE-----\n"
    near_limit = _commands(MAX_COMMAND_LENGTH - 200)
    spec = _spec(
        api_server={"ca_cert": ca_cert},
        head_node={"setup_commands": near_limit, "head_setup_commands": _commands(MAX_COMMAND_LENGTH)},
        worker_node={"setup_commands": near_limit},
        common_node_config={"setup_commands": near_limit, "initialization_commands": near_limit},
    )  # validated by the same model the CRD is generated from: the API server would accept it
    rendered = _rendered(spec, names.ROLE_HEAD, HEAD_TYPE)
    message = user_data_over_budget(rendered, names.ROLE_HEAD, HEAD_TYPE, spec)
    assert message is not None
    assert "\n" not in message
    assert f"the head node (type {HEAD_TYPE})" in message
    size = len(rendered.encode())
    assert f"is {size} bytes ({readable_size(size)}), more than the 1015808 bytes its Secret can hold" in message
    assert "(1 MiB less 32 KiB kept for the Secret's metadata)" in message
    assert message.endswith("the largest part is head_node.head_setup_commands (400 KiB)")


def test_a_worker_names_only_what_reaches_a_worker() -> None:
    spec = _spec(
        head_node={"setup_commands": _commands(MAX_COMMAND_LENGTH)},  # large, but never on a worker
        worker_node={"setup_commands": _commands(MAX_COMMAND_LENGTH - 100)},
        common_node_config={"setup_commands": _commands(3000), "initialization_commands": _commands(3000)},
    )
    rendered = _rendered(spec, names.ROLE_WORKER, WORKER_TYPE)
    assert len(rendered.encode()) > USER_DATA_BUDGET
    message = user_data_over_budget(rendered, names.ROLE_WORKER, WORKER_TYPE, spec)
    assert message is not None
    assert f"the worker node (type {WORKER_TYPE})" in message
    assert message.endswith("the largest part is worker_node.setup_commands (390 KiB)")


@pytest.mark.parametrize(
    ("changes", "largest"),
    [
        pytest.param({"api_server": {"ca_cert": "x" * 60_000}}, "api_server.ca_cert (59 KiB)", id="ca-cert"),
        pytest.param(
            {"common_node_config": {"initialization_commands": ["apt-get install -y nvidia-driver-550"] * 40}},
            "common_node_config.initialization_commands (1 KiB)",
            id="initialization",
        ),
        pytest.param(
            {"common_node_config": {"vm_password_salt_hash": "$6$" + "s" * 500}},
            "common_node_config.vm_password_salt_hash (503 bytes)",
            id="password-hash",
        ),
    ],
)
def test_the_largest_field_is_named(changes: dict[str, Any], largest: str) -> None:
    """The size of the user-data is given, so that only the ranking of the spec's fields is under test."""
    spec = _spec(**changes)
    message = user_data_over_budget("#cloud-config\n" + "x" * USER_DATA_BUDGET, names.ROLE_HEAD, HEAD_TYPE, spec)
    assert message is not None
    assert message.endswith(f"the largest part is {largest}")


def test_a_node_types_own_labels_and_resources_count() -> None:
    labels = {f"team.example.com/label-{i}-{'l' * 150}": "v" * 63 for i in range(32)}
    spec = _spec(
        common_node_config={
            "available_node_types": {
                HEAD_TYPE: {"vm_class": "best-effort-small"},
                WORKER_TYPE: {"vm_class": "best-effort-small", "ray_labels": labels},
            }
        }
    )
    too_large = "x" * (USER_DATA_BUDGET + 1)
    worker = user_data_over_budget(too_large, names.ROLE_WORKER, WORKER_TYPE, spec)
    assert worker is not None
    assert worker.endswith(
        f"the largest part is common_node_config.available_node_types.{WORKER_TYPE}.ray_labels (7 KiB)"
    )
    head = user_data_over_budget(too_large, names.ROLE_HEAD, HEAD_TYPE, spec)
    assert head is not None
    assert "ray_labels" not in head  # the labels of another type are not on the head


def test_exactly_the_budget_fits_and_one_byte_more_does_not() -> None:
    spec = sample_spec()
    assert user_data_over_budget("x" * USER_DATA_BUDGET, names.ROLE_HEAD, HEAD_TYPE, spec) is None
    over = user_data_over_budget("x" * (USER_DATA_BUDGET + 1), names.ROLE_HEAD, HEAD_TYPE, spec)
    assert over is not None
    assert "is 1015809 bytes (992 KiB), more than the 1015808 bytes" in over
    # bytes, not characters: non-ASCII text takes more room than its length says
    assert user_data_over_budget("é" * (USER_DATA_BUDGET // 2 + 1), names.ROLE_HEAD, HEAD_TYPE, spec) is not None


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (812 * 1024, "812 KiB"),
        (1024 * 1024, "1 MiB"),
        (int(1.25 * 1024 * 1024), "1.25 MiB"),
    ],
)
def test_readable_size(size: int, text: str) -> None:
    assert readable_size(size) == text
