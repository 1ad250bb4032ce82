"""Specs and contexts for unit tests of the pure code."""

from __future__ import annotations

import copy
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
# stands for the cluster's root CA Kubernetes writes beside the token
ROOT_CA = "-----BEGIN CERTIFICATE-----\nroot CA of the cluster\n-----END CERTIFICATE-----\n"


def sample_spec(**overrides: Any) -> VMRayClusterSpec:
    spec = sample(NAMESPACE)["spec"]
    spec.update(overrides)
    return VMRayClusterSpec.model_validate(spec)


def context(
    spec: VMRayClusterSpec | None = None,
    head_address: str | None = "10.212.0.1",
    version: str = "v1alpha2",
    token: str | None = TOKEN,
    root_ca: str | None = ROOT_CA,
) -> ClusterContext:
    return ClusterContext(
        NAME,
        NAMESPACE,
        UID,
        spec or sample_spec(),
        NOUNCE,
        version,
        head_address,
        cluster_token=token,
        cluster_root_ca=root_ca,
    )


def head_of(desired: DesiredState) -> dict[str, Any]:
    """The desired head VM, which a test expects to be rendered."""
    assert desired.head_vm is not None
    return desired.head_vm


def identity_of(desired: DesiredState) -> dict[str, dict[str, Any]]:
    """The cluster's ServiceAccount, Role and RoleBinding as the API server holds them when nobody touched them."""
    result: dict[str, dict[str, Any]] = {}
    for body in desired.identity:
        stored = copy.deepcopy(body)
        stored["metadata"]["uid"] = f"u-{body['metadata']['name']}"
        result.setdefault(body["kind"], {})[body["metadata"]["name"]] = stored
    return result
