"""What the operator may take from the Secrets a spec names: never a ServiceAccount token, never a Secret it keeps
for a cluster, and as a password only a crypt(3) hash."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.specs import sample_spec
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.reconcile.user_secrets import read_user_secrets, referenced_secret_names

HASH = "$6$salt1234$Jq0nbbS8m3aP/9JzCJvIgUeNDTJu0R7VxoyxLmbM4MRfUxVdl4cL6dNB8h7tQsQ8v6SWy3c1Vw7Txcm0e.0Ph1"
FIELD = "common_node_config.vm_password_secret"


def _secret(data: dict[str, str], **meta: Any) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"name": "s", **meta}, "type": meta.pop("type", "Opaque"), "data": encoded}


def _spec(key: str = "hash") -> VMRayClusterSpec:
    common = {**sample_spec().common_node_config.model_dump(exclude_none=True)}
    common.pop("vm_password_salt_hash", None)
    common["vm_password_secret"] = {"name": "s", "key": key}
    return sample_spec(common_node_config=common)


def test_a_crypt_hash_is_taken() -> None:
    assert read_user_secrets(_spec(), {"s": _secret({"hash": HASH + "\n"})}).password_hash == HASH


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        pytest.param(
            {"metadata": {"name": "s"}, "type": "kubernetes.io/service-account-token", "data": {}},
            "it holds a ServiceAccount token",
            id="token",
        ),
        pytest.param(
            _secret({"hash": HASH}, labels={"app.kubernetes.io/managed-by": "vmray-operator"}),
            "the operator keeps it for a cluster",
            id="labelled",
        ),
        pytest.param(
            _secret(
                {"hash": HASH},
                ownerReferences=[{"apiVersion": "vmray.broadcom.com/v1alpha1", "kind": "VMRayCluster", "name": "x"}],
            ),
            "the operator keeps it for a cluster",
            id="owned",
        ),
    ],
)
def test_secrets_the_operator_keeps_are_refused_naming_the_field(secret: dict[str, Any], why: str) -> None:
    result = read_user_secrets(_spec(), {"s": secret})
    assert result.password_hash is None
    assert result.invalid == (f"{FIELD}: Secret s may not be used: {why}",)
    assert result.missing == ()


@pytest.mark.parametrize("value", ["hunter2", "$6$", "$6$salt:with:colons", "-----BEGIN EC PRIVATE KEY-----"])
def test_a_value_that_is_no_crypt_hash_is_a_spec_error_that_never_quotes_it(value: str) -> None:
    result = read_user_secrets(_spec(), {"s": _secret({"hash": value})})
    assert result.password_hash is None
    assert len(result.invalid) == 1
    assert result.invalid[0].startswith(f"{FIELD}: the value of key hash of Secret s is not a crypt(3)")
    if value:
        assert value not in result.invalid[0]


def test_a_missing_secret_or_key_is_missing_not_invalid() -> None:
    assert read_user_secrets(_spec(), {"s": None}).missing == ("Secret s (key hash)",)
    assert read_user_secrets(_spec("other"), {"s": _secret({"hash": HASH})}).missing == ("Secret s (key other)",)


def test_registry_credentials_follow_the_same_rules() -> None:
    spec = sample_spec(docker_config={"auth_secret_name": "reg"})
    assert referenced_secret_names(spec) == ["reg"]
    good = {"reg": _secret({"username": "u", "password": "p"})}
    credentials = read_user_secrets(spec, good).registry
    assert credentials is not None
    assert (credentials.username, credentials.password) == ("u", "p")
    token = {"reg": {"metadata": {"name": "reg"}, "type": "kubernetes.io/service-account-token", "data": {}}}
    result = read_user_secrets(spec, token)
    assert result.registry is None
    assert result.invalid == (
        "docker_config.auth_secret_name: Secret reg may not be used: it holds a ServiceAccount token",
    )
