"""Pure builders: golden files for every object kind, and the properties that matter to users."""

from __future__ import annotations

import base64
import shlex

import yaml

from tests.support.golden import assert_golden
from tests.support.specs import NAME, NOUNCE, context, head_of, sample_spec
from vmray_operator.api.models import NodeType
from vmray_operator.render import names
from vmray_operator.render.desired import desired_state
from vmray_operator.render.ray_node import node_runtime, resource_arguments

WORKERS = {"test-ray-w-aaaaaaaa": "ray.worker.default", "test-ray-w-bbbbbbbb": "ray.worker.default"}


def _user_data(secret: dict[str, object]) -> str:
    data = secret["data"]
    assert isinstance(data, dict)
    return base64.b64decode(data["user-data"]).decode()


def test_head_vm_service_and_secret_golden() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS)))
    assert_golden("head-vm.yaml", head_of(desired))
    assert_golden("head-service.yaml", desired.service)
    head_secret = desired.secrets[head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]]
    assert_golden("head-user-data.yaml", _user_data(head_secret))


def test_worker_vm_and_user_data_golden() -> None:
    desired = desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS)))
    assert set(desired.workers) == set(WORKERS)
    worker = desired.workers["test-ray-w-aaaaaaaa"]
    assert_golden("worker-vm.yaml", worker)
    secret_name = worker["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    assert_golden("worker-user-data.yaml", _user_data(desired.secrets[secret_name]))


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
        assert meta["labels"][names.LABEL_CLUSTER] == NAME
        assert meta["ownerReferences"][0]["controller"] is True


def test_changing_the_image_changes_the_bootstrap_hash() -> None:
    first = desired_state(context(sample_spec()))
    second = desired_state(context(sample_spec(ray_docker_image="rayproject/ray:2.59.0")))
    key = names.ANNOTATION_BOOTSTRAP_HASH
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
        assert fetch[:2] == ["python3", "/etc/vmray/tls_fetch.py"]
        assert f"--secret={NAME}-ray-tls" in fetch
        assert runtime.env_files == ["/etc/vmray/token.env"]
        plain = node_runtime(context(sample_spec(enable_tls=False)), role, node_type)
        assert "RAY_USE_TLS" not in plain.env
        assert not any("tls_fetch" in c for c in plain.setup_commands)


def test_no_node_is_given_the_ca_or_its_key() -> None:
    desired = desired_state(
        context(sample_spec(autoscaler_desired_workers={f"{NAME}-w-aaaaaaaa": "ray.worker.default"}))
    )
    for secret in desired.secrets.values():
        files = {f["path"] for f in yaml.safe_load(_user_data(secret))["write_files"]}
        assert "/etc/vmray/tls_fetch.py" in files
        assert not any("ca.key" in f or f.endswith(".key") for f in files)


def test_user_input_is_quoted_never_pasted() -> None:
    hostile = "echo hi; $(reboot) 'quoted' \"double\""
    spec = sample_spec(head_node={"node_type": "ray.head.default", "port": 6245, "setup_commands": [hostile]})
    desired = desired_state(context(spec))
    user_data = _user_data(next(iter(desired.secrets.values())))
    document = yaml.safe_load(user_data)  # still valid YAML
    script = next(f["content"] for f in document["write_files"] if f["path"] == "/usr/local/bin/vmray-ray-node")
    # The shell sees the hostile command as data: one bash -c argument, exactly as written.
    docker_run = script[script.index("exec docker run") :].replace("\\\n", " ")
    words = shlex.split(docker_run)
    command = words[words.index("-c") + 1]
    assert f" && ( {hostile} ) && " in command
    assert "exec ray start --head" in command.split(hostile)[-1]


def test_password_hash_or_locked_login() -> None:
    with_hash = yaml.safe_load(_user_data(next(iter(desired_state(context(sample_spec())).secrets.values()))))
    assert with_hash["users"][1]["lock_passwd"] is False
    spec = sample_spec()
    spec.common_node_config.vm_password_salt_hash = None
    locked = yaml.safe_load(_user_data(next(iter(desired_state(context(spec)).secrets.values()))))
    assert locked["users"][1]["lock_passwd"] is True
    assert "hashed_passwd" not in locked["users"][1]
