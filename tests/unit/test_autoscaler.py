"""The head's autoscaler: its config is one Ray itself accepts, and its identity reaches only its own cluster."""

from __future__ import annotations

import base64
import dataclasses
import datetime
from typing import Any

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.support.specs import NAME, NAMESPACE, NOUNCE, TOKEN, context, head_of, identity_of, sample_spec
from vmray_operator.api import contract
from vmray_operator.reconcile.observed import Observed, issued_token
from vmray_operator.reconcile.plan import Create, Delete, Drain, Kind, Update, plan
from vmray_operator.render import identity
from vmray_operator.render.autoscaler import autoscaler_config
from vmray_operator.render.context import ClusterContext, OperatorDefaults
from vmray_operator.render.desired import desired_state
from vmray_operator.render.guest_paths import (
    API_SERVER_CA,
    AUTOSCALER_CONFIG,
    LIVE_AUTOSCALER_CONFIG,
    NODE_AGENT,
    TOKEN_ENV,
)
from vmray_operator.render.ray_node import node_runtime

DRAIN = Drain(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), 60.0)


def _files(ctx: ClusterContext) -> dict[str, dict[str, Any]]:
    desired = desired_state(ctx)
    secret = desired.secrets[head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]]
    document = yaml.safe_load(base64.b64decode(secret["data"]["user-data"]))
    return {entry["path"]: entry for entry in document["write_files"]}


def test_config_passes_rays_own_validation() -> None:
    config = autoscaler_config(context())
    validate_config(prepare_config(config))  # raises on anything Ray's schema refuses
    assert config["provider"]["type"] == "vsphere"
    assert config["provider"]["disable_node_updaters"] is True
    assert config["provider"]["vsphere_config"] == {
        "namespace": NAMESPACE,
        "api_server": "10.211.0.1:443",  # the sample's bare IP, as Ray's provider wants it: host:port, no scheme
        "ca_cert": API_SERVER_CA,
    }
    assert config["cluster_name"] == NAME
    assert config["max_workers"] == 5
    assert config["head_node_type"] == "ray.head.default"


def test_node_types_use_rays_resource_names_and_the_spec_limits() -> None:
    spec = sample_spec()
    worker = spec.common_node_config.available_node_types["ray.worker.default"]
    worker.resources = {"cpu": 4, "gpu": 1, "memory": 2**30, "tier_heavy": 1}
    spec.common_node_config.idle_timeout_minutes = 7
    spec.autoscaling.upscaling_speed = 2.5
    config = autoscaler_config(context(spec))
    entry = config["available_node_types"]["ray.worker.default"]
    assert entry["resources"] == {"CPU": 4, "GPU": 1, "memory": 2**30, "tier_heavy": 1}
    assert (entry["min_workers"], entry["max_workers"]) == (2, 5)
    assert entry["node_config"] == {"vm_class": "best-effort-small"}
    assert config["idle_timeout_minutes"] == 7
    assert config["upscaling_speed"] == 2.5


def test_operator_defaults_fill_the_api_server_and_ca() -> None:
    spec = sample_spec(api_server={})
    ctx = dataclasses.replace(
        context(spec), defaults=OperatorDefaults("10.0.0.1:6443", "-----BEGIN CERTIFICATE-----\nx\n")
    )
    vsphere = autoscaler_config(ctx)["provider"]["vsphere_config"]
    assert vsphere["api_server"] == "10.0.0.1:6443"
    files = _files(ctx)
    assert files[vsphere["ca_cert"]]["content"].startswith("-----BEGIN CERTIFICATE-----")


def test_head_starts_the_autoscaler_with_the_token_in_a_private_file() -> None:
    ctx = context()
    runtime = node_runtime(ctx, "head", "ray.head.default")
    assert f"--autoscaling-config={LIVE_AUTOSCALER_CONFIG}" in runtime.ray_start
    # before any command of the user; only the TLS certificate fetch comes earlier
    assert runtime.setup_commands[1] == f"mkdir -p /tmp/ray && cp {AUTOSCALER_CONFIG} {LIVE_AUTOSCALER_CONFIG}"
    (sync,) = runtime.companions
    assert sync[:3] == ["python3", NODE_AGENT, "sync-autoscaler-config"]
    assert "--config-map=test-ray-autoscaler-config" in sync
    assert runtime.env_files == [TOKEN_ENV]
    assert runtime.env["VMSERVICE_CRD_VER"] == ctx.vmop_api_version
    assert TOKEN not in " ".join(runtime.ray_start) + repr(runtime.env)
    files = _files(ctx)
    assert files[TOKEN_ENV] == {
        "path": TOKEN_ENV,
        "permissions": "0600",
        "content": f"SVC_ACCOUNT_TOKEN={TOKEN}\n",
    }
    assert yaml.safe_load(files[AUTOSCALER_CONFIG]["content"]) == autoscaler_config(ctx)


def test_workers_never_get_the_autoscaler_and_without_tls_no_token() -> None:
    with_tls = node_runtime(context(), "worker", "ray.worker.default")
    assert not any(arg.startswith("--autoscaling-config") for arg in with_tls.ray_start)
    assert with_tls.env_files == [TOKEN_ENV]  # to fetch the node's certificate
    assert (
        node_runtime(
            context(sample_spec(enable_tls=False, enable_token_auth=False)), "worker", "ray.worker.default"
        ).env_files
        == []
    )
    desired = desired_state(
        context(
            sample_spec(
                autoscaler_desired_workers={f"{NAME}-w-aaaaaaaa": "ray.worker.default"},
                enable_tls=False,
                enable_token_auth=False,
            )
        )
    )
    head_secret = head_of(desired)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]
    for name, secret in desired.secrets.items():
        if name != head_secret:
            assert TOKEN not in base64.b64decode(secret["data"]["user-data"]).decode()


def test_head_waits_for_its_token() -> None:
    desired = desired_state(context(token=None))
    assert desired.head_vm is None
    assert desired.secrets == {}  # no head user-data without the token; no workers without the head address
    assert desired.token_secret is not None


def test_without_autoscaling_or_tls_the_head_needs_no_identity() -> None:
    spec = sample_spec(autoscaling={"enabled": False}, enable_tls=False, enable_token_auth=False)
    desired = desired_state(context(spec, token=None))
    assert desired.head_vm is not None
    assert desired.identity == []
    assert desired.token_secret is None
    assert not any(
        a.startswith("--autoscaling-config") for a in node_runtime(context(spec), "head", "ray.head.default").ray_start
    )


def test_a_ray_up_cluster_gets_no_autoscaler_from_the_operator() -> None:
    ctx = dataclasses.replace(
        context(sample_spec(enable_tls=False, enable_token_auth=False), token=None), created_by="ray-cli"
    )
    desired = desired_state(ctx)
    assert desired.head_vm is not None
    assert desired.token_secret is None


def test_with_tls_a_ray_up_cluster_gets_an_identity_that_only_reads_what_its_nodes_fetch() -> None:
    ctx = dataclasses.replace(context(token=None), created_by="ray-cli")
    desired = desired_state(ctx)
    assert desired.head_vm is None  # it waits for the token to fetch its certificate
    assert desired.token_secret is not None
    (rule,) = identity.role(ctx)["rules"]
    fetched = [f"{NAME}-ray-tls", f"{NAME}-ray-auth"]  # never the CA's Secret, never the client's
    assert rule == {"apiGroups": [""], "resources": ["secrets"], "resourceNames": fetched, "verbs": ["get"]}
    without_auth = dataclasses.replace(ctx, spec=sample_spec(enable_token_auth=False))
    assert identity.role(without_auth)["rules"][0]["resourceNames"] == [f"{NAME}-ray-tls"]


def test_role_reaches_only_this_cluster_and_its_head_service() -> None:
    role = identity.role(context(sample_spec(enable_tls=False, enable_token_auth=False)))
    assert role["metadata"]["namespace"] == NAMESPACE
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r for r in role["rules"]}
    assert rules[(("vmray.broadcom.com",), ("vmrayclusters",))]["resourceNames"] == [NAME]
    assert rules[(("vmray.broadcom.com",), ("vmrayclusters",))]["verbs"] == ["get", "patch"]
    service_rule = rules[(("vmoperator.vmware.com",), ("virtualmachineservices",))]
    assert service_rule["resourceNames"] == [f"{NAME}-h-{NOUNCE}"]
    assert service_rule["verbs"] == ["get"]
    config_rule = rules[(("",), ("configmaps",))]
    assert (config_rule["resourceNames"], config_rule["verbs"]) == (["test-ray-autoscaler-config"], ["get"])
    assert len(role["rules"]) == 3
    with_tls = identity.role(context())["rules"]
    assert with_tls[:3] == role["rules"]
    assert with_tls[3] == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": [f"{NAME}-ray-tls", f"{NAME}-ray-auth"],
        "verbs": ["get"],
    }
    binding = identity.role_binding(context())
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{NAME}-autoscaler", "namespace": NAMESPACE}]
    for body in (role, binding, identity.service_account(context()), identity.token_secret(context())):
        assert body["metadata"]["ownerReferences"][0]["kind"] == "VMRayCluster"


def test_identity_is_made_once_with_the_token_secret_after_the_account() -> None:
    desired = desired_state(context(token=None))
    actions = plan(desired, Observed(), DRAIN)
    kinds = [a.kind for a in actions if isinstance(a, Create)]
    assert kinds[:4] == [Kind.SERVICE_ACCOUNT, Kind.ROLE, Kind.ROLE_BINDING, Kind.TOKEN_SECRET]
    assert Kind.VM not in kinds
    token = identity.token_secret(context())
    token["metadata"]["uid"] = "t"
    made = desired_state(context())
    actions = plan(made, Observed(secrets={token["metadata"]["name"]: token}, identity=identity_of(made)), DRAIN)
    assert not any(a.kind in (Kind.SERVICE_ACCOUNT, Kind.ROLE, Kind.ROLE_BINDING, Kind.TOKEN_SECRET) for a in actions)


def _identity_actions(observed_identity: dict[str, dict[str, Any]]) -> list[Any]:
    made = desired_state(context())
    token = identity.token_secret(context())
    token["metadata"]["uid"] = "t"
    observed = Observed(secrets={token["metadata"]["name"]: token}, identity=observed_identity)
    return [a for a in plan(made, observed, DRAIN) if a.kind in (Kind.SERVICE_ACCOUNT, Kind.ROLE, Kind.ROLE_BINDING)]


def test_a_deleted_role_is_made_again() -> None:
    current = identity_of(desired_state(context()))
    del current["Role"]
    actions = _identity_actions(current)
    assert [(type(a), a.kind) for a in actions] == [(Create, Kind.ROLE)]
    assert isinstance(actions[0], Create)
    assert actions[0].body == identity.role(context())


def test_an_edited_role_gets_its_rules_back_and_an_edited_binding_is_made_again() -> None:
    current = identity_of(desired_state(context()))
    role = current["Role"][identity.service_account_name("test-ray")]
    role["rules"] = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    binding = current["RoleBinding"][identity.service_account_name("test-ray")]
    binding["roleRef"] = {**binding["roleRef"], "name": "cluster-admin"}
    actions = _identity_actions(current)
    assert Update(Kind.ROLE, role["metadata"]["name"], {"rules": identity.role(context())["rules"]}) in actions
    assert (
        Delete(
            Kind.ROLE_BINDING,
            binding["metadata"]["name"],
            binding["metadata"]["uid"],
            "its roleRef was changed",
        )
        in actions
    )


def test_added_subjects_are_taken_out_of_the_binding() -> None:
    current = identity_of(desired_state(context()))
    binding = current["RoleBinding"][identity.service_account_name("test-ray")]
    binding["subjects"] = [*binding["subjects"], {"kind": "ServiceAccount", "name": "intruder", "namespace": "x"}]
    actions = _identity_actions(current)
    assert actions == [
        Update(
            Kind.ROLE_BINDING, binding["metadata"]["name"], {"subjects": identity.role_binding(context())["subjects"]}
        )
    ]


def test_turning_autoscaling_off_deletes_the_token_unless_tls_needs_it() -> None:
    token = identity.token_secret(context())
    token["metadata"]["uid"] = "t"
    observed = Observed(secrets={token["metadata"]["name"]: token})
    desired = desired_state(
        context(sample_spec(autoscaling={"enabled": False}, enable_tls=False, enable_token_auth=False))
    )
    actions = plan(desired, observed, DRAIN)
    assert Delete(Kind.TOKEN_SECRET, token["metadata"]["name"], "t", "the cluster needs no ServiceAccount") in actions
    tls_desired = desired_state(context(sample_spec(autoscaling={"enabled": False})))
    assert not [a for a in plan(tls_desired, observed, DRAIN) if isinstance(a, Delete)]


def test_issued_token_reads_what_kubernetes_wrote() -> None:
    assert issued_token(None) is None
    assert issued_token({"data": {}}) is None
    assert issued_token({"data": {"token": "!!"}}) is None
    assert issued_token({"data": {"token": base64.b64encode(b"abc").decode()}}) == "abc"


def test_scaling_limits_do_not_make_the_head_outdated() -> None:
    """The autoscaler's config lives in the head's user-data, but a change of limits must not replace the
    head (and restart Ray): only what else the head runs counts."""
    key = contract.ANNOTATION_ROLLOUT_HASH
    before = desired_state(context())
    spec = sample_spec()
    spec.common_node_config.max_workers = 4
    spec.common_node_config.idle_timeout_minutes = 30
    after = desired_state(context(spec))
    assert head_of(after)["metadata"]["annotations"][key] == head_of(before)["metadata"]["annotations"][key]
    assert after.secrets != before.secrets  # the new limits still reach the next head through its Secret
    spec = sample_spec()
    spec.head_node.setup_commands = ["pip install pandas"]
    changed = desired_state(context(spec))
    assert head_of(changed)["metadata"]["annotations"][key] != head_of(before)["metadata"]["annotations"][key]


def test_the_config_map_follows_the_limits_and_goes_with_the_autoscaler() -> None:
    desired = desired_state(context())
    config = desired.autoscaler_config
    assert config is not None
    assert yaml.safe_load(config["data"]["autoscaler.yaml"]) == autoscaler_config(context())
    observed = Observed(
        config_maps={config["metadata"]["name"]: {**config, "metadata": {**config["metadata"], "uid": "c"}}}
    )
    assert not [a for a in plan(desired, observed, DRAIN) if a.kind is Kind.CONFIG_MAP]

    spec = sample_spec()
    spec.common_node_config.available_node_types["ray.worker.default"].max_workers = 4
    changed = plan(desired_state(context(spec)), observed, DRAIN)
    (update,) = [a for a in changed if a.kind is Kind.CONFIG_MAP]
    assert isinstance(update, Update)
    assert "max_workers: 4" in update.patch["data"]["autoscaler.yaml"]

    off = plan(desired_state(context(sample_spec(autoscaling={"enabled": False}))), observed, DRAIN)
    assert Delete(Kind.CONFIG_MAP, config["metadata"]["name"], "c", "the head runs no autoscaler") in off
