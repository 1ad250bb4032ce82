"""The Supervisor API address in every form people write it, and nodes that always verify the API server."""

from __future__ import annotations

import base64
import dataclasses
import re
import shlex
from typing import Any

import pytest
import yaml

from tests.support.specs import ROOT_CA, context, head_of, sample_spec
from vmray_operator.render.api_server import ApiServerAddress, api_server_problem, parse_api_server
from vmray_operator.render.autoscaler import autoscaler_config, config_sync_command
from vmray_operator.render.context import ClusterContext, OperatorDefaults
from vmray_operator.render.credentials import fetch_command
from vmray_operator.render.desired import desired_state
from vmray_operator.render.guest_paths import API_SERVER_CA
from vmray_operator.render.ray_node import node_runtime

CONFIGURED_CA = "-----BEGIN CERTIFICATE-----\nconfigured CA\n-----END CERTIFICATE-----\n"
# nothing a node fetches with the cluster's token at boot (Ray's TLS certificate, Ray's token)
NO_BOOT_FETCH: dict[str, Any] = {"enable_tls": False, "enable_token_auth": False}


@pytest.mark.parametrize(
    ("location", "host", "port", "authority"),
    [
        ("192.168.10.2", "192.168.10.2", 443, "192.168.10.2:443"),  # what the seed tells users to write
        ("192.168.10.2:6443", "192.168.10.2", 6443, "192.168.10.2:6443"),
        ("  192.168.10.2:6443\n", "192.168.10.2", 6443, "192.168.10.2:6443"),
        ("supervisor.corp.example", "supervisor.corp.example", 443, "supervisor.corp.example:443"),
        ("supervisor.corp.example.:6443", "supervisor.corp.example", 6443, "supervisor.corp.example:6443"),
        ("wcp-01", "wcp-01", 443, "wcp-01:443"),
        ("2001:db8::10", "2001:db8::10", 443, "[2001:db8::10]:443"),
        ("2001:DB8:0:0:0:0:0:10", "2001:db8::10", 443, "[2001:db8::10]:443"),
        ("[2001:db8::10]", "2001:db8::10", 443, "[2001:db8::10]:443"),
        ("[2001:db8::10]:6443", "2001:db8::10", 6443, "[2001:db8::10]:6443"),
        ("https://192.168.10.2", "192.168.10.2", 443, "192.168.10.2:443"),
        ("https://192.168.10.2/", "192.168.10.2", 443, "192.168.10.2:443"),
        ("HTTPS://supervisor.corp.example:6443/", "supervisor.corp.example", 6443, "supervisor.corp.example:6443"),
        ("https://[2001:db8::10]:6443/", "2001:db8::10", 6443, "[2001:db8::10]:6443"),
        ("10.0.0.1:0443", "10.0.0.1", 443, "10.0.0.1:443"),
    ],
)
def test_every_form_people_write_becomes_host_and_port(location: str, host: str, port: int, authority: str) -> None:
    address = parse_api_server(location)
    assert address == ApiServerAddress(host, port)
    assert address.authority == authority


@pytest.mark.parametrize(
    ("location", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("http://192.168.10.2", "HTTPS"),
        ("http://192.168.10.2:6443/", "HTTPS"),
        ("ftp://192.168.10.2", "scheme ftp://"),
        ("https://192.168.10.2/api", "path"),
        ("192.168.10.2:6443/k8s", "path"),
        ("192.168.10.2/", "path"),
        ("https://192.168.10.2?x=1", "query"),
        ("https://admin:secret@192.168.10.2", "user names or passwords"),
        ("admin@192.168.10.2", "user names or passwords"),
        ("192.168.10.2:", "port after ':' is empty"),
        ("192.168.10.2:https", "'https' is not a number"),
        ("192.168.10.2:-1", "'-1' is not a number"),
        ("192.168.10.2:0", "out of range"),
        ("192.168.10.2:65536", "out of range"),
        ("[2001:db8::10]:99999", "out of range"),
        ("192.168.10 .2", "space"),
        ("supervisor corp", "space"),
        ("192.168.10.256", "not a valid IPv4 address"),
        ("192.168.10", "not a valid IPv4 address"),
        ("super_visor.corp", "characters no host name has: _"),
        ("supervisör.corp", "characters no host name has: ö"),
        ("supervisor..corp", "not a valid host name"),
        ("-supervisor.corp", "not a valid host name"),
        ("a" * 64 + ".corp", "not a valid host name"),
        ("2001:db8::zz", "not a valid IPv6 address"),
        ("2001:db8::10:6443:extra", "[IPv6 address]:port"),
        ("[2001:db8::10", "not closed"),
        ("[2001:db8::10]6443", "only :port may follow"),
        ("[192.168.10.2]:6443", "not a valid IPv6 address"),
        ("fe80::1%eth0", "zone"),
        ("https://", "host is missing"),
        (":6443", "host is missing"),
    ],
)
def test_anything_else_is_refused_saying_what_is_wrong(location: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse_api_server(location)


def _with(ctx: ClusterContext, **changes: Any) -> ClusterContext:
    return dataclasses.replace(ctx, **changes)


def test_the_problem_names_the_field_and_what_is_wrong() -> None:
    assert api_server_problem(context()) is None
    empty = context(sample_spec(api_server={}))
    assert api_server_problem(empty) == (
        "spec.api_server.location is empty and the operator has no default (install value supervisor.apiServerLocation)"
    )
    assert api_server_problem(context(sample_spec(api_server={"location": "   "}))) == api_server_problem(empty)
    assert api_server_problem(_with(empty, defaults=OperatorDefaults("192.168.10.2"))) is None
    wrong = api_server_problem(context(sample_spec(api_server={"location": "http://192.168.10.2"})))
    assert wrong is not None
    assert wrong.startswith("spec.api_server.location 'http://192.168.10.2' is not usable: http://")
    assert "\n" not in wrong
    default_wrong = api_server_problem(_with(empty, defaults=OperatorDefaults("192.168.10.2:port")))
    assert default_wrong is not None
    assert default_wrong.startswith("the operator's default API server location '192.168.10.2:port' is not usable")
    # the spec's location wins over a broken default
    assert api_server_problem(_with(context(), defaults=OperatorDefaults("http://x"))) is None


def test_a_cluster_that_never_reaches_the_api_has_no_problem_with_it() -> None:
    spec = sample_spec(api_server={}, autoscaling={"enabled": False}, **NO_BOOT_FETCH)
    assert api_server_problem(context(spec)) is None
    ray_up = _with(context(sample_spec(api_server={}, **NO_BOOT_FETCH)), created_by="ray-cli")
    assert api_server_problem(ray_up) is None
    # TLS alone makes every node fetch its certificate from the API
    tls_only = sample_spec(api_server={}, autoscaling={"enabled": False}, **{**NO_BOOT_FETCH, "enable_tls": True})
    assert api_server_problem(context(tls_only)) is not None


def test_the_context_parses_the_location_and_refuses_an_empty_one() -> None:
    assert context(sample_spec(api_server={"location": " https://[2001:db8::10]/ "})).api_server == ApiServerAddress(
        "2001:db8::10", 443
    )
    with pytest.raises(ValueError, match="empty"):
        _ = context(sample_spec(api_server={})).api_server


def test_the_nodes_trust_the_configured_ca_else_the_clusters_root_ca() -> None:
    assert context().api_server_trusted_ca == ROOT_CA
    assert context(root_ca=None).api_server_trusted_ca is None
    configured = context(sample_spec(api_server={"location": "192.168.10.2", "ca_cert": CONFIGURED_CA}))
    assert configured.api_server_trusted_ca == CONFIGURED_CA
    by_default = _with(context(), defaults=OperatorDefaults("", CONFIGURED_CA))
    assert by_default.api_server_trusted_ca == CONFIGURED_CA


def test_rays_provider_gets_host_port_and_always_a_ca() -> None:
    for location, authority in [
        ("192.168.10.2", "192.168.10.2:443"),
        ("https://supervisor.corp.example/", "supervisor.corp.example:443"),
        ("2001:db8::10", "[2001:db8::10]:443"),
    ]:
        vsphere = autoscaler_config(context(sample_spec(api_server={"location": location})))["provider"][
            "vsphere_config"
        ]
        # Ray's provider builds https://{api_server} and skips verification when ca_cert is empty
        assert vsphere["api_server"] == authority
        assert vsphere["ca_cert"] == API_SERVER_CA


@pytest.mark.parametrize("location", ["192.168.10.2", "[2001:db8::10]:6443"])
def test_every_guest_command_names_the_authority_and_the_ca(location: str) -> None:
    ctx = context(sample_spec(api_server={"location": location}))
    authority = parse_api_server(location).authority
    for command in (fetch_command(ctx), config_sync_command(ctx)):
        assert f"--api-server={authority}" in command
        assert f"--ca-cert={API_SERVER_CA}" in command
    for role, node_type in (("head", "ray.head.default"), ("worker", "ray.worker.default")):
        runtime = node_runtime(ctx, role, node_type)
        fetch = shlex.split(runtime.setup_commands[0])
        assert fetch == fetch_command(ctx)


def _written_files(ctx: ClusterContext) -> dict[str, dict[str, dict[str, Any]]]:
    """The cloud-init files of each rendered node by path, by the node's VM name."""
    desired = desired_state(ctx)
    files = {}
    for vm in [head_of(desired), *desired.workers.values()]:
        secret = desired.secrets[vm["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]]
        document = yaml.safe_load(base64.b64decode(secret["data"]["user-data"]))
        files[vm["metadata"]["name"]] = {entry["path"]: entry for entry in document["write_files"]}
    return files


@pytest.mark.parametrize("enable_tls", [True, False])
def test_every_node_that_uses_the_token_gets_the_ca_it_verifies_with(enable_tls: bool) -> None:
    workers = {"test-ray-w-aaaaaaaa": "ray.worker.default"}
    ctx = context(sample_spec(**{**NO_BOOT_FETCH, "enable_tls": enable_tls}, autoscaler_desired_workers=workers))
    assert ctx.node_uses_token("worker") is enable_tls
    files = _written_files(ctx)
    assert len(files) == 2
    for vm_name, by_path in files.items():
        if vm_name not in workers or enable_tls:
            assert by_path[API_SERVER_CA] == {"path": API_SERVER_CA, "permissions": "0644", "content": ROOT_CA}
        else:
            assert API_SERVER_CA not in by_path  # a worker without TLS never talks to the API
    configured = dataclasses.replace(ctx, defaults=OperatorDefaults("", CONFIGURED_CA))
    for vm_name, by_path in _written_files(configured).items():
        if vm_name not in workers or enable_tls:
            assert by_path[API_SERVER_CA]["content"] == CONFIGURED_CA


def test_a_node_that_uses_the_token_waits_for_a_ca() -> None:
    workers = {"test-ray-w-aaaaaaaa": "ray.worker.default"}
    waiting = desired_state(context(sample_spec(autoscaler_desired_workers=workers), root_ca=None))
    assert waiting.head_vm is None
    assert waiting.workers == {}
    assert waiting.secrets == {}
    configured = dataclasses.replace(
        context(sample_spec(autoscaler_desired_workers=workers), root_ca=None),
        defaults=OperatorDefaults("", CONFIGURED_CA),
    )
    ready = desired_state(configured)
    assert head_of(ready) is not None
    assert set(ready.workers) == set(workers)
    # a cluster whose nodes never use the token needs no CA
    plain = sample_spec(autoscaling={"enabled": False}, autoscaler_desired_workers=workers, **NO_BOOT_FETCH)
    unneeded = desired_state(context(plain, token=None, root_ca=None))
    assert unneeded.head_vm is not None
    assert set(unneeded.workers) == set(workers)
