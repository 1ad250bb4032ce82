"""Bad specs are refused by the API server itself (OpenAPI and CEL rules), naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.clusters import sample
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Invalid, Kube

Mutation = Callable[[dict[str, Any]], None]
WORKER = "ray.worker.default"


def _types(body: dict[str, Any]) -> dict[str, Any]:
    types: dict[str, Any] = body["spec"]["common_node_config"]["available_node_types"]
    return types


def _set(path: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        node = body
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return mutate


def _worker(**fields: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        _types(body)[WORKER].update(fields)

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        node = body
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def _rename_type(name: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        _types(body)[name] = _types(body).pop(WORKER)

    return mutate


CASES: list[tuple[str, Mutation, str]] = [
    ("head-type-unknown", _set("spec.head_node.node_type", "ray.head.gpu"), "head_node.node_type"),
    ("min-above-max", _worker(min_workers=4, max_workers=3), "min_workers"),
    ("type-max-above-cluster-max", _worker(max_workers=6), "max_workers"),
    ("sum-of-mins-above-max", _set("spec.common_node_config.max_workers", 1), "min_workers"),
    (
        "desired-unknown-type",
        _set("spec.autoscaler_desired_workers", {"test-ray-w-abcdefgh": "nope"}),
        "autoscaler_desired_workers",
    ),
    (
        "desired-above-max",
        _set("spec.autoscaler_desired_workers", {f"test-ray-w-{i:08d}": WORKER for i in range(6)}),
        "autoscaler_desired_workers",
    ),
    (
        "desired-name-not-dns",
        _set("spec.autoscaler_desired_workers", {"Test_Ray.w": WORKER}),
        "autoscaler_desired_workers",
    ),
    ("cluster-name-too-long", _set("metadata.name", "r" * 41), "metadata.name"),
    ("cluster-name-with-dots", _set("metadata.name", "ray.cluster"), "metadata.name"),
    ("image-shape", _set("spec.ray_docker_image", "Ray Project/ray:latest"), "ray_docker_image"),
    ("gcs-port-privileged", _set("spec.head_node.port", 80), "head_node.port"),
    ("password-not-a-hash", _set("spec.common_node_config.vm_password_salt_hash", "hunter2"), "vm_password_salt_hash"),
    ("vm-image-missing", _drop("spec.common_node_config.vm_image"), "vm_image"),
    ("no-node-types", _set("spec.common_node_config.available_node_types", {}), "available_node_types"),
    ("node-type-name", _rename_type("-bad-"), "available_node_types"),
    ("vm-class-shape", _worker(vm_class="Best_Effort"), "vm_class"),
    ("negative-min", _worker(min_workers=-1), "min_workers"),
    ("idle-timeout-zero", _set("spec.common_node_config.idle_timeout_minutes", 0), "idle_timeout_minutes"),
    ("negative-resource", _worker(resources={"cpu": -2}), "resources"),
    ("wrong-type", _set("spec.common_node_config.max_workers", "five"), "max_workers"),
    ("auth-secret-name", _set("spec.docker_config.auth_secret_name", "Bad Name"), "auth_secret_name"),
    ("vm-user-shape", _set("spec.common_node_config.vm_user", "Root User"), "vm_user"),
    ("unknown-field", _set("spec.head_node.gpus", 1), "spec.head_node.gpus"),
    (
        "password-twice",
        _set("spec.common_node_config.vm_password_secret", {"name": "ray-password"}),
        "vm_password_secret",
    ),
    (
        "nfs-export-relative",
        _set("spec.common_node_config.shared_storage", {"nfs_server": "nas", "export_path": "x"}),
        "export_path",
    ),
    (
        "nfs-options-injection",
        _set(
            "spec.common_node_config.shared_storage",
            {"nfs_server": "nas", "export_path": "/x", "mount_options": "rw 0 0\n/dev/sda /"},
        ),
        "mount_options",
    ),
]


@pytest.mark.parametrize(("mutation", "field"), [(m, f) for _, m, f in CASES], ids=[c[0] for c in CASES])
async def test_invalid_spec_is_rejected_naming_the_field(
    kube: Kube, namespace: str, mutation: Mutation, field: str
) -> None:
    body = sample(namespace)
    mutation(body)
    with pytest.raises(ApiError) as rejected:
        await kube.create(r.VMRAYCLUSTERS, body, namespace)
    assert rejected.value.status in (400, 422)  # 400: strict decoding of an unknown field
    assert field in rejected.value.message


IMMUTABLE: list[tuple[str, dict[str, Any], str]] = [
    ("gcs-port", {"head_node": {"port": 7000}}, "head_node.port is immutable"),
    ("tls", {"enable_tls": False}, "enable_tls is immutable"),
    ("storage-class", {"common_node_config": {"storage_class": "other"}}, "storage_class is immutable"),
    ("vm-user", {"common_node_config": {"vm_user": "admin"}}, "vm_user is immutable"),
    ("network", {"common_node_config": {"network": {"interfaces": []}}}, "network is immutable"),
]


@pytest.mark.parametrize(("patch", "message"), [(p, m) for _, p, m in IMMUTABLE], ids=[c[0] for c in IMMUTABLE])
async def test_immutable_fields_cannot_change(kube: Kube, namespace: str, patch: dict[str, Any], message: str) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "fixed"), namespace)
    with pytest.raises(Invalid) as rejected:
        await kube.patch(r.VMRAYCLUSTERS, "fixed", {"spec": patch}, namespace)
    assert message in rejected.value.message


async def test_the_seed_sample_and_a_ray_up_cluster_are_accepted(kube: Kube, namespace: str) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace), namespace)
    # What Ray's `ray up` writes: nulls for unset values, head_setup_commands, its own labels.
    ray_up = {
        "apiVersion": "vmray.broadcom.com/v1alpha1",
        "kind": "VMRayCluster",
        "metadata": {
            "name": "from-ray",
            "namespace": namespace,
            "labels": {"vmray.kubernetes.io/head-nounce": "ab12cd34", "vmray.io/created-by": "ray-cli"},
        },
        "spec": {
            "api_server": {"location": None},
            "ray_docker_image": "rayproject/ray:2.60.0",
            "head_node": {"head_setup_commands": ["pip list"], "port": 6379, "node_type": "ray.head.default"},
            "common_node_config": {
                "vm_image": "vmi-7289e7d90a3c53e73",
                "storage_class": "vsan-default-storage-policy",
                "vm_password_salt_hash": "",
                "max_workers": 2,
                "vm_user": "ray",
                "available_node_types": {
                    "ray.head.default": {
                        "vm_class": "best-effort-small",
                        "resources": {},
                        "min_workers": 0,
                        "max_workers": 0,
                    },
                    "worker": {
                        "vm_class": "best-effort-small",
                        "resources": {"CPU": 2},
                        "min_workers": 1,
                        "max_workers": 2,
                    },
                },
            },
        },
    }
    created = await kube.create(r.VMRAYCLUSTERS, ray_up, namespace)
    assert created["spec"]["head_node"]["head_setup_commands"] == ["pip list"]


@pytest.mark.parametrize("salt_hash", ["", None, "absent"])
async def test_a_password_secret_is_accepted_without_an_inline_hash(
    kube: Kube, namespace: str, salt_hash: str | None
) -> None:
    body = sample(namespace, "by-secret")
    common = body["spec"]["common_node_config"]
    if salt_hash == "absent":
        del common["vm_password_salt_hash"]
    else:
        common["vm_password_salt_hash"] = salt_hash
    common["vm_password_secret"] = {"name": "ray-login", "key": "hash"}
    common["shared_storage"] = {"nfs_server": "10.0.0.9", "export_path": "/vsanfs/ray"}
    created = await kube.create(r.VMRAYCLUSTERS, body, namespace)
    assert created["spec"]["common_node_config"]["shared_storage"]["mount_path"] == "/mnt/shared_storage"
