"""Pure builders: golden files for every object kind, and the properties that matter to users."""

from __future__ import annotations

import base64
import dataclasses
import shlex
from typing import Any

import pytest
import yaml

from tests.support.golden import assert_golden
from tests.support.specs import NAME, NOUNCE, context, head_of, sample_spec
from vmray_operator.api import contract
from vmray_operator.api.models import NodeType
from vmray_operator.render import names
from vmray_operator.render.desired import DesiredState, desired_state
from vmray_operator.render.ray_node import node_runtime, resource_arguments
from vmray_operator.render.shell_templates import templates

WORKERS = {"test-ray-w-aaaaaaaa": "ray.worker.default", "test-ray-w-bbbbbbbb": "ray.worker.default"}


def _user_data(secret: dict[str, object]) -> str:
    data = secret["data"]
    assert isinstance(data, dict)
    return base64.b64decode(data["user-data"]).decode()


def head_secret_of(desired: DesiredState) -> dict[str, Any]:
    return desired.secrets[head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]]


def test_head_vm_service_and_secret_golden() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS)))
    assert_golden("head-vm.yaml", head_of(desired))
    assert_golden("head-service.yaml", desired.service)
    assert_golden("head-user-data.yaml", _user_data(head_secret_of(desired)))


def test_worker_vm_and_user_data_golden() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS)))
    assert set(desired.workers) == set(WORKERS)
    worker = desired.workers["test-ray-w-aaaaaaaa"]
    assert_golden("worker-vm.yaml", worker)
    secret_name = worker["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    assert_golden("worker-user-data.yaml", _user_data(desired.secrets[secret_name]))


def test_a_template_changed_under_a_running_operator_makes_no_vm_outdated(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context(sample_spec(autoscaler_desired_workers=WORKERS))
    before = desired_state(ctx)
    environment = templates()
    loaded = environment.get_template("ray-node.sh.j2")
    monkeypatch.setattr(loaded, "_uptodate", lambda: False)  # its file changed on disk since it was read
    assert environment.loader is not None
    monkeypatch.setattr(environment.loader, "get_source", lambda env, name: ("echo another script\n", None, None))
    after = desired_state(ctx)
    assert after.workers == before.workers
    assert head_of(after) == head_of(before)


def test_workers_of_one_type_share_one_bootstrap_secret() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS)))
    refs = {w["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"] for w in desired.workers.values()}
    assert len(refs) == 1
    assert len(desired.secrets) == 2  # head and one worker type


def test_workers_wait_for_the_head_address_but_stay_wanted() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS), head_address=None))
    assert desired.workers == {}
    assert desired.wanted_workers == WORKERS
    assert head_of(desired)["metadata"]["name"] == f"{NAME}-h-{NOUNCE}"


def test_vm_operator_version_is_used_for_every_object() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS), version="v1alpha5"))
    for body in (head_of(desired), desired.service, *desired.workers.values()):
        assert body["apiVersion"] == "vmoperator.vmware.com/v1alpha5"


def test_every_object_is_owned_by_the_cluster_and_labelled() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS)))
    for body in (head_of(desired), desired.service, *desired.workers.values(), *desired.secrets.values()):
        meta = body["metadata"]
        assert meta["labels"][contract.LABEL_CLUSTER] == NAME
        assert meta["ownerReferences"][0]["controller"] is True


def test_changing_the_image_changes_the_bootstrap_hash() -> None:
    first = desired_state(context(sample_spec()))
    second = desired_state(context(sample_spec(ray_docker_image="rayproject/ray:2.59.0")))
    key = contract.ANNOTATION_ROLLOUT_HASH
    assert head_of(first)["metadata"]["annotations"][key] != head_of(second)["metadata"]["annotations"][key]


def test_resources_become_ray_start_flags() -> None:
    node_type = NodeType(
        vm_class="c", resources={"CPU": 4, "gpu": 1, "memory": 8 * 2**30, "tpu_slice": 0.5}, ray_labels={"tier": "gpu"}
    )
    assert resource_arguments(node_type) == [
        "--num-cpus=4",
        "--num-gpus=1",
        "--memory=8589934592",
        '--resources={"tpu_slice":0.5}',
        "--labels=tier=gpu",
    ]


def test_worker_joins_through_the_head_service_address() -> None:
    runtime = node_runtime(context(sample_spec(), head_address="10.212.0.9"), names.ROLE_WORKER, "ray.worker.default")
    assert "--address=10.212.0.9:6245" in runtime.ray_start
    assert runtime.ray_start[-1] == "--block"
    assert runtime.env["RAY_NODE_TYPE_NAME"] == "ray.worker.default"
    assert runtime.env["RAY_USAGE_STATS_ENABLED"] == "0"


def test_with_tls_every_node_fetches_its_certificate_before_ray_starts() -> None:
    for role, node_type in ((names.ROLE_HEAD, "ray.head.default"), (names.ROLE_WORKER, "ray.worker.default")):
        runtime = node_runtime(context(), role, node_type)
        assert runtime.env["RAY_USE_TLS"] == "1"
        assert runtime.env["RAY_TLS_SERVER_KEY"] == "/tmp/ray/tls/node.key"
        fetch = shlex.split(runtime.setup_commands[0])
        assert fetch[:3] == ["python3", "/etc/vmray/node_agent.py", "fetch-credentials"]
        assert f"--secret={NAME}-ray-tls" in fetch
        assert runtime.env_files == ["/etc/vmray/token.env"]
        token_only = node_runtime(context(sample_spec(enable_tls=False)), role, node_type)
        assert "RAY_USE_TLS" not in token_only.env
        fetch = shlex.split(token_only.setup_commands[0])
        assert fetch[:3] == ["python3", "/etc/vmray/node_agent.py", "fetch-credentials"]
        assert not any(arg.startswith(("--secret", "--directory")) for arg in fetch)
        plain = node_runtime(context(sample_spec(enable_tls=False, enable_token_auth=False)), role, node_type)
        assert not any("fetch-credentials" in c for c in plain.setup_commands)


def test_with_token_auth_every_node_fetches_rays_token_and_every_ray_process_asks_for_it() -> None:
    for role, node_type in ((names.ROLE_HEAD, "ray.head.default"), (names.ROLE_WORKER, "ray.worker.default")):
        runtime = node_runtime(context(), role, node_type)
        assert runtime.env["RAY_AUTH_MODE"] == "token"
        assert runtime.env["RAY_AUTH_TOKEN_PATH"] == "/tmp/ray/auth/token"
        fetch = shlex.split(runtime.setup_commands[0])
        assert f"--auth-secret={NAME}-ray-auth" in fetch
        assert "--auth-token-file=/tmp/ray/auth/token" in fetch
        off = node_runtime(context(sample_spec(enable_token_auth=False)), role, node_type)
        assert off.env["RAY_AUTH_MODE"] == "disabled"  # so a Ray that turns it on by default does not
        assert not any("--auth-secret" in c for c in off.setup_commands)


def test_rays_token_is_made_once_and_never_rendered_into_a_node() -> None:
    ctx = dataclasses.replace(context(), new_ray_token="f" * 64)
    desired = desired_state(
        dataclasses.replace(
            ctx, spec=sample_spec(autoscaler_desired_workers={f"{NAME}-w-aaaaaaaa": "ray.worker.default"})
        )
    )
    assert desired.ray_token_secret is not None
    assert desired.ray_token_secret["stringData"] == {"token": "f" * 64}
    for secret in desired.secrets.values():
        assert "f" * 64 not in _user_data(secret)
    assert desired_state(context()).ray_token_secret is None  # no fresh token given: the Secret exists


def test_no_node_is_given_the_ca_or_its_key() -> None:
    desired = desired_state(
        context(sample_spec(autoscaler_desired_workers={f"{NAME}-w-aaaaaaaa": "ray.worker.default"}))
    )
    for secret in desired.secrets.values():
        files = {f["path"] for f in yaml.safe_load(_user_data(secret))["write_files"]}
        assert "/etc/vmray/node_agent.py" in files
        assert not any("ca.key" in f or f.endswith(".key") for f in files)


def test_user_commands_are_written_as_typed_in_the_setup_script_and_nowhere_else() -> None:
    hostile = "echo hi; $(reboot) 'quoted' \"double\"  # a comment"
    spec = sample_spec(head_node={"node_type": "ray.head.default", "port": 6245, "setup_commands": [hostile]})
    ctx = context(spec)
    desired = desired_state(ctx)
    document = yaml.safe_load(_user_data(head_secret_of(desired)))  # still valid YAML
    files = {f["path"]: f["content"] for f in document["write_files"]}
    setup = files["/etc/vmray/setup.sh"]
    assert f"(\n{hostile}\n)\n" in setup  # as typed, in a subshell of its own
    # Where the script names the command in its messages, the shell sees it as data, exactly as written.
    step = node_runtime(ctx, names.ROLE_HEAD, "ray.head.default").setup_commands.index(hostile) + 1
    (naming,) = [line for line in setup.splitlines() if line.startswith(f"vmray_step={step} ")]
    assert shlex.split(naming) == [f"vmray_step={step}", f"vmray_command={hostile}"]
    # The container runs the setup script, then Ray; the node script never holds the command itself.
    node_script = files["/usr/local/bin/vmray-ray-node"]
    assert "reboot" not in node_script
    words = shlex.split(node_script[node_script.index("docker run") :].replace("\\\n", " "))
    command = words[words.index("-c") + 1]
    assert command.startswith("/etc/vmray/setup.sh && ")
    assert command.split(" && ")[-1].startswith("exec ray start --head")


def test_password_hash_or_locked_login() -> None:
    with_hash = yaml.safe_load(_user_data(next(iter(desired_state(context(sample_spec())).secrets.values()))))
    assert with_hash["users"][1]["lock_passwd"] is False
    spec = sample_spec()
    spec.common_node_config.vm_password_salt_hash = None
    locked = yaml.safe_load(_user_data(next(iter(desired_state(context(spec)).secrets.values()))))
    assert locked["users"][1]["lock_passwd"] is True
    assert "hashed_passwd" not in locked["users"][1]
