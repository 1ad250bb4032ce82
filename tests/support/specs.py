"""Specs and contexts for unit tests of the pure code."""

from __future__ import annotations

from typing import Any

from tests.support.clusters import sample
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.desired import DesiredState

NAME = "test-ray"
NAMESPACE = "deploy-ray"
UID = "0b5c6a3e-1111-2222-3333-444455556666"
NOUNCE = "n0unce12"
TOKEN = "token-of-the-autoscaler"  # stands for the ServiceAccount token Kubernetes issues


def sample_spec(**overrides: Any) -> VMRayClusterSpec:
    spec = sample(NAMESPACE)["spec"]
    spec.update(overrides)
    return VMRayClusterSpec.model_validate(spec)


def context(
    spec: VMRayClusterSpec | None = None,
    head_address: str | None = "10.212.0.1",
    version: str = "v1alpha2",
    token: str | None = TOKEN,
) -> ClusterContext:
    return ClusterContext(
        NAME, NAMESPACE, UID, spec or sample_spec(), NOUNCE, version, head_address, cluster_token=token
    )


def head_of(desired: DesiredState) -> dict[str, Any]:
    """The desired head VM, which a test expects to be rendered."""
    assert desired.head_vm is not None
    return desired.head_vm
