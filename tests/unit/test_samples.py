"""The sample VMRayClusters in crds/samples: each is a valid spec, shows the feature it is named for, names no time
zone the operator rejects, and those for the local cloud agree with the local cloud's sample."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from vmray_operator.api import contract
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.local import samples
from vmray_operator.reconcile.schedule import schedule_problems

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
LOCAL_SAMPLE = "vmraycluster.yaml"
SUPERVISOR_SAMPLE = "vmraycluster-supervisor.yaml"
PLACEHOLDER = re.compile(r"<[^<>\n]+>")  # a value the user fills in, as in the Supervisor sample


def _tiers(spec: VMRayClusterSpec) -> bool:
    types = spec.common_node_config.available_node_types
    scheduled = [t for t in types.values() if t.schedule is not None]
    always = [name for name, t in types.items() if t.schedule is None and name != spec.head_node.node_type]
    return bool(scheduled and always) and all(
        t.ray_labels.get("tier") and any(r not in ("cpu", "CPU") for r in t.resources) for t in scheduled
    )


# What each sample is about: a check that fails when the sample loses it. A new sample gets an entry here.
FEATURES: dict[str, Callable[[VMRayClusterSpec], bool]] = {
    LOCAL_SAMPLE: lambda spec: spec.common_node_config.vm_password_salt_hash is not None,
    SUPERVISOR_SAMPLE: lambda spec: spec.common_node_config.vm_password_secret is not None,
    "vmraycluster-suspended.yaml": lambda spec: spec.suspend,
    "vmraycluster-idle-suspend.yaml": lambda spec: spec.idle_suspend_minutes == 30 and not spec.suspend,
    "vmraycluster-deletion-guard.yaml": lambda spec: (
        spec.deletion_policy.wait_for_jobs and spec.deletion_policy.max_wait_minutes == 120
    ),
    "vmraycluster-night-tier.yaml": _tiers,
}


def _files() -> list[str]:
    return sorted(path.name for path in SAMPLES.glob("*.yaml"))


def _load(name: str) -> dict[str, Any]:
    """The sample as applied: its <...> placeholders filled in with a name any of them accepts."""
    text = PLACEHOLDER.sub("filled-in", (SAMPLES / name).read_text())
    body: dict[str, Any] = yaml.safe_load(text)
    return body


def _spec(name: str) -> VMRayClusterSpec:
    return VMRayClusterSpec.model_validate(_load(name)["spec"])


def test_every_sample_says_what_it_shows() -> None:
    assert set(_files()) == set(FEATURES)


@pytest.mark.parametrize("name", _files())
def test_a_sample_is_a_valid_cluster_showing_its_feature(name: str) -> None:
    body = _load(name)
    assert (body["apiVersion"], body["kind"]) == (contract.API_VERSION, contract.KIND)
    assert body["metadata"]["name"]
    assert body["metadata"]["namespace"]
    assert (SAMPLES / name).read_text().startswith("# "), "a comment header says what the sample shows"
    spec = _spec(name)
    assert FEATURES[name](spec), f"{name} no longer shows what it is named for"
    assert schedule_problems(spec) == []  # no time zone the operator rejects


def test_the_local_cloud_samples_differ_from_its_sample_only_in_what_they_show() -> None:
    base = _spec(LOCAL_SAMPLE)
    names = [n for n in _files() if n != SUPERVISOR_SAMPLE]
    assert len({_load(n)["metadata"]["name"] for n in names}) == len(names)  # they can run side by side
    for name in names:
        spec = _spec(name)
        common = spec.common_node_config
        assert spec.api_server == base.api_server, name
        assert spec.ray_docker_image == base.ray_docker_image, name
        assert common.network == base.common_node_config.network, name
        assert common.vm_image == samples.VM_IMAGE, name
        assert common.storage_class == samples.STORAGE_CLASS, name
        assert common.vm_password_salt_hash == base.common_node_config.vm_password_salt_hash, name
        assert {t.vm_class for t in common.available_node_types.values()} <= set(samples.VM_CLASSES), name
