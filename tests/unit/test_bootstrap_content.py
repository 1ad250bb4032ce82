"""What a node's cloud-init carries besides Ray: the password hash, registry credentials, shared storage."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest
import yaml

from tests.support.specs import context, head_of, sample_spec
from vmray_operator.api.models import SharedStorage
from vmray_operator.local.cloudinit_schema import validate_user_data
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.desired import desired_state
from vmray_operator.render.registry import DOCKER_CONFIG_PATH, DOCKER_HUB, RegistryCredentials, registry_of

WORKERS = {"test-ray-w-aaaaaaaa": "ray.worker.default"}
NFS = {"nfs_server": "10.0.0.9", "export_path": "/vsanfs/ray-share", "mount_path": "/mnt/shared", "mount_options": ""}


def _user_data(ctx: ClusterContext) -> dict[str, str]:
    """Every rendered user-data by secret name."""
    return {
        name: base64.b64decode(secret["data"]["user-data"]).decode()
        for name, secret in desired_state(ctx).secrets.items()
    }


def _documents(ctx: ClusterContext) -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in _user_data(ctx).values()]


def _user(document: dict[str, Any]) -> dict[str, Any]:
    user: dict[str, Any] = document["users"][1]
    return user


def test_password_hash_from_a_secret_unlocks_the_login() -> None:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    spec.common_node_config.vm_password_salt_hash = None
    locked = _documents(context(spec))
    assert all(_user(d)["lock_passwd"] is True and "hashed_passwd" not in _user(d) for d in locked)
    ctx = dataclasses.replace(context(spec), password_hash="$6$salt$fromasecret")
    for document in _documents(ctx):
        assert _user(document)["hashed_passwd"] == "$6$salt$fromasecret"
        assert _user(document)["lock_passwd"] is False


def test_registry_credentials_become_a_private_docker_config_not_a_command_line() -> None:
    credentials = RegistryCredentials("puller", "s3cret-pass", None)
    spec = sample_spec(autoscaler_desired_workers=WORKERS, ray_docker_image="harbor.example.com:8443/ml/ray:2.60.0")
    ctx = dataclasses.replace(context(spec), registry_credentials=credentials)
    for text in _user_data(ctx).values():
        document = yaml.safe_load(text)
        (entry,) = [f for f in document["write_files"] if f["path"] == DOCKER_CONFIG_PATH]
        assert entry["permissions"] == "0600"
        auths = json.loads(entry["content"])["auths"]
        assert base64.b64decode(auths["harbor.example.com:8443"]["auth"]).decode() == "puller:s3cret-pass"
        # nowhere else: not in a command, not in the node's data, not in a script
        assert text.count(auths["harbor.example.com:8443"]["auth"]) == 1
        assert "s3cret-pass" not in text
    assert "s3cret-pass" not in repr(credentials)


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("rayproject/ray:2.60.0", DOCKER_HUB),
        ("ray:2.60.0", DOCKER_HUB),
        ("harbor.corp/ray/ray:2.60.0", "harbor.corp"),
        ("localhost:5000/ray:1", "localhost:5000"),
        ("localhost/ray", "localhost"),
    ],
)
def test_registry_of_an_image_reference(image: str, registry: str) -> None:
    assert registry_of(image) == registry


def test_shared_storage_is_mounted_before_ray_and_seen_by_the_container() -> None:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    spec.common_node_config.shared_storage = SharedStorage.model_validate(NFS)
    ctx = context(spec)
    for text in _user_data(ctx).values():
        document = yaml.safe_load(text)
        assert document["mounts"] == [["10.0.0.9:/vsanfs/ray-share", "/mnt/shared", "nfs", "nofail", "0", "0"]]
        assert "nfs-common" in document["packages"]
        runcmd = document["runcmd"]
        assert runcmd.index(["mount", "/mnt/shared"]) < runcmd.index(
            ["systemctl", "enable", "--now", "vmray-ray.service"]
        )
        files = {f["path"]: f["content"] for f in document["write_files"]}
        assert "--volume /mnt/shared:/mnt/shared" in files["/usr/local/bin/vmray-ray-node"]
        assert "RequiresMountsFor=/mnt/shared" in files["/etc/systemd/system/vmray-ray.service"]


def test_gpu_node_types_get_the_gpus_and_say_how_many() -> None:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    spec.common_node_config.available_node_types["ray.worker.default"].resources = {"cpu": 8, "gpu": 2}
    desired = desired_state(context(spec))
    worker_secret = desired.workers["test-ray-w-aaaaaaaa"]["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    head_secret = head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    worker = base64.b64decode(desired.secrets[worker_secret]["data"]["user-data"]).decode()
    head = base64.b64decode(desired.secrets[head_secret]["data"]["user-data"]).decode()
    assert "--gpus all" in worker
    assert "--num-gpus=2" in worker
    assert "--gpus all" not in head


HEREDOC = "cat > /tmp/ray/settings.conf <<'EOF'\n# generated\nlevel = 3\nEOF"


def test_each_command_is_written_once_into_the_script_of_its_purpose() -> None:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    spec.common_node_config.setup_commands = [HEREDOC]
    spec.common_node_config.initialization_commands = ["apt-get install -y jq  # for the jobs"]
    for text in _user_data(context(spec)).values():
        document = yaml.safe_load(text)
        files = {f["path"]: f["content"] for f in document["write_files"]}
        assert files["/etc/vmray/setup.sh"].count(f"(\n{HEREDOC}\n)\n") == 1
        assert "(\napt-get install -y jq  # for the jobs\n)\n" in files["/etc/vmray/initialize.sh"]
        assert text.count("level = 3") == 1  # nowhere else: not in the node script, not as data
        assert text.count("apt-get install -y jq") == 2  # the command, and its name in the script's messages
        assert document["runcmd"][0] == ["/etc/vmray/initialize.sh"]


def test_everything_at_once_is_still_valid_cloud_config() -> None:
    spec = sample_spec(
        autoscaler_desired_workers=WORKERS,
        common_node_config={
            **sample_spec().common_node_config.model_dump(exclude_none=True),
            "shared_storage": NFS,
            "setup_commands": ["echo 'it''s; $(rm -rf /)'", "pip install torch  # pin later", HEREDOC],
            "initialization_commands": ["apt-get install -y jq"],
        },
    )
    ctx = dataclasses.replace(
        context(spec), registry_credentials=RegistryCredentials("u", "p:w\"'", "r.example.com"), password_hash="$6$a$b"
    )
    for text in _user_data(ctx).values():
        assert validate_user_data(text) == []
