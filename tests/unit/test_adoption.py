"""The first patch: finalizer, head nounce, and the workers' floor, with optimistic concurrency."""

from __future__ import annotations

import itertools
from typing import Any

from tests.support.specs import sample_spec
from vmray_operator.api import contract
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.reconcile.adoption import adoption_patch, missing_floor


def _counter() -> Any:
    numbers = itertools.count()
    return lambda: f"{next(numbers):08d}"


def _body(labels: dict[str, str] | None = None, finalizers: list[str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "test-ray",
            "namespace": "ns",
            "resourceVersion": "42",
            "labels": labels or {},
            "finalizers": finalizers or [],
        }
    }


def test_new_cluster_gets_finalizer_nounce_and_floor_in_one_guarded_patch() -> None:
    patch = adoption_patch(_body(finalizers=["other/keep"]), sample_spec(), _counter())
    assert patch == {
        "metadata": {
            "finalizers": ["other/keep", contract.FINALIZER],
            "labels": {contract.HEAD_NOUNCE_LABEL: "00000000"},
            "resourceVersion": "42",
        },
        "spec": {
            "autoscaler_desired_workers": {
                "test-ray-w-00000001": "ray.worker.default",
                "test-ray-w-00000002": "ray.worker.default",
            }
        },
    }


def test_adopted_cluster_needs_no_patch() -> None:
    body = _body({contract.HEAD_NOUNCE_LABEL: "abc"}, [contract.FINALIZER])
    assert adoption_patch(body, sample_spec(), _counter()) is None


def test_ray_up_cluster_keeps_its_nounce_and_is_not_seeded() -> None:
    body = _body({contract.HEAD_NOUNCE_LABEL: "fromray1", contract.CREATED_BY_LABEL: "ray-cli"})
    patch = adoption_patch(body, sample_spec(), _counter())
    assert patch == {"metadata": {"finalizers": [contract.FINALIZER], "resourceVersion": "42"}}


def test_with_autoscaling_off_the_operator_keeps_the_floor() -> None:
    spec = sample_spec(
        autoscaling={"enabled": False}, autoscaler_desired_workers={"test-ray-w-keep0000": "ray.worker.default"}
    )
    body = _body({contract.HEAD_NOUNCE_LABEL: "abc"}, [contract.FINALIZER])
    patch = adoption_patch(body, spec, _counter())
    assert patch == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"autoscaler_desired_workers": {"test-ray-w-00000000": "ray.worker.default"}},
    }


def test_floor_skips_the_head_type_and_taken_names() -> None:
    spec = VMRayClusterSpec.model_validate(
        {
            **sample_spec().model_dump(),
            "autoscaler_desired_workers": {"test-ray-w-00000000": "ray.worker.default"},
        }
    )
    spec.common_node_config.available_node_types["ray.head.default"].min_workers = 3
    added = missing_floor(spec, "test-ray", _counter())
    assert added == {"test-ray-w-00000001": "ray.worker.default"}
