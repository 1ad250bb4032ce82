"""Ray's mutual TLS on the real API server: the operator keeps each cluster's CA to itself, issues every node a
certificate for its address, and the nodes' token reads their certificates and nothing else."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.clusters import as_token, cluster_token, cluster_vms, sample, wait_condition
from tests.support.waiting import wait_for
from vmray_operator.api import contract
from vmray_operator.conditions import find
from vmray_operator.controller.runtime import Controller
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Forbidden, Kube
from vmray_operator.render import names, tls
from vmray_operator.render.guest_paths import API_SERVER_CA
from vmray_operator.render.names import ClusterSecret

pytestmark = pytest.mark.simulator


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _ips(cert: x509.Certificate) -> set[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}


async def _certificates(kube: Kube, namespace: str, cluster: str) -> dict[str, str]:
    secret = await kube.get(r.SECRETS, ClusterSecret.CERTIFICATES.of(cluster), namespace)
    assert secret is not None
    return _decoded(secret)


async def test_every_node_gets_a_certificate_for_its_address_signed_by_the_cluster_ca(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "sealed"), namespace)
    cluster = await wait_condition(kube, namespace, "sealed", "Ready")
    condition = find(cluster["status"]["conditions"], "TLS")
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("True", "Enabled")

    ca_secret = await kube.get(r.SECRETS, ClusterSecret.CA.of("sealed"), namespace)
    assert ca_secret is not None
    assert ca_secret["metadata"]["ownerReferences"][0]["uid"] == cluster["metadata"]["uid"]
    ca = _decoded(ca_secret)
    ca_cert = x509.load_pem_x509_certificate(ca[tls.CA_CERT_KEY].encode())
    ca_key = ca[tls.CA_KEY_KEY]

    lb_ip = cluster["status"]["vm_service_status"]["ip"]
    head = names.head_vm_name("sealed", cluster["metadata"]["labels"][contract.HEAD_NOUNCE_LABEL])

    async def all_issued() -> dict[str, str] | None:
        entries = await _certificates(kube, namespace, "sealed")
        vms = await cluster_vms(kube, namespace, "sealed")
        addresses = {vm["status"]["network"]["primaryIP4"] for vm in vms.values()}
        return entries if all(tls.cert_key(a) in entries for a in addresses) else None

    entries = await wait_for(all_issued, timeout=30, what="a certificate for every VM")
    assert entries[tls.CA_CERT_KEY] == ca[tls.CA_CERT_KEY]
    vms = await cluster_vms(kube, namespace, "sealed")
    for name, vm in vms.items():
        address = vm["status"]["network"]["primaryIP4"]
        cert = x509.load_pem_x509_certificate(entries[tls.cert_key(address)].encode())
        cert.verify_directly_issued_by(ca_cert)
        expected = {address, "127.0.0.1", *([lb_ip] if name == head else [])}
        assert _ips(cert) == expected, name
        key = serialization.load_pem_private_key(entries[tls.key_key(address)].encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key() == cert.public_key()
        assert ipaddress.ip_address(address)

    # The CA's key is in the operator's Secret only: not in any node's cloud-init, not in the nodes' Secret.
    for secret in await kube.list(r.SECRETS, namespace, f"{contract.LABEL_CLUSTER}=sealed"):
        if secret["metadata"]["name"] != ClusterSecret.CA.of("sealed"):
            assert ca_key not in "\n".join(_decoded(secret).values()), secret["metadata"]["name"]


async def test_the_nodes_token_reads_its_certificates_and_not_the_ca(
    kube: Kube, namespace: str, operator: Controller
) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "mine"), namespace)
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "theirs"), namespace)
    await wait_condition(kube, namespace, "mine", "Ready")
    await wait_condition(kube, namespace, "theirs", "Ready")
    node = as_token(kube, await cluster_token(kube, namespace, "mine"))
    try:
        assert await node.get(r.SECRETS, ClusterSecret.CERTIFICATES.of("mine"), namespace) is not None
        for forbidden in (ClusterSecret.CA.of("mine"), ClusterSecret.CERTIFICATES.of("theirs")):
            with pytest.raises(Forbidden):
                await node.get(r.SECRETS, forbidden, namespace)
    finally:
        node.close()


async def test_a_removed_workers_certificate_goes_with_it(kube: Kube, namespace: str, operator: Controller) -> None:
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "shrink"), namespace)
    cluster = await wait_condition(kube, namespace, "shrink", "Ready")
    workers = sorted(cluster["spec"]["autoscaler_desired_workers"])
    vms = await cluster_vms(kube, namespace, "shrink")
    leaving = vms[workers[0]]["status"]["network"]["primaryIP4"]
    assert tls.cert_key(leaving) in await _certificates(kube, namespace, "shrink")

    await kube.patch(r.VMRAYCLUSTERS, "shrink", {"spec": {"autoscaler_desired_workers": {workers[0]: None}}}, namespace)

    async def dropped() -> bool:
        entries = await _certificates(kube, namespace, "shrink")
        return workers[0] not in await cluster_vms(kube, namespace, "shrink") and tls.key_key(leaving) not in entries

    await wait_for(dropped, timeout=60, what=f"the certificate of {leaving} dropped")


async def _rendered_api_ca(kube: Kube, namespace: str, vm: dict[str, Any]) -> str:
    """The CA the operator wrote into a VM's cloud-init for verifying the API server."""
    bootstrap = vm["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]
    secret = await kube.get(r.SECRETS, bootstrap["name"], namespace)
    assert secret is not None
    user_data = yaml.safe_load(base64.b64decode(secret["data"][bootstrap["key"]]))
    (ca,) = [f["content"] for f in user_data["write_files"] if f["path"] == API_SERVER_CA]
    return str(ca)


async def test_a_node_fetches_exactly_its_own_certificate(
    kube: Kube, namespace: str, operator: Controller, tmp_path: Path
) -> None:
    """As the node runs it: verifying the API server with the CA in its cloud-init (with no CA configured, the
    cluster's root CA from its token Secret), which the real API server's certificate comes from."""
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "fetch"), namespace)
    cluster = await wait_condition(kube, namespace, "fetch", "Ready")
    worker_name, worker = sorted(cluster["status"]["current_workers"].items(), key=lambda w: w[1]["ip"])[0]
    entries = await wait_for(lambda: _entry_of(kube, namespace, "fetch", worker["ip"]), what="the certificate")
    ca_file = tmp_path / "api-server-ca.crt"
    ca_file.write_text(
        await _rendered_api_ca(kube, namespace, (await cluster_vms(kube, namespace, "fetch"))[worker_name])
    )

    async def fetch(token: str, directory: Path) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vmray_operator.guest.node_agent",
            "fetch-credentials",
            f"--api-server={kube.configuration.host.removeprefix('https://')}",
            f"--ca-cert={ca_file}",
            f"--namespace={namespace}",
            f"--secret={ClusterSecret.CERTIFICATES.of('fetch')}",
            f"--directory={directory}",
            f"--address={worker['ip']}",
            "--interval=0.2",
            "--timeout=3",
            env={"SVC_ACCOUNT_TOKEN": token, "PATH": os.environ["PATH"]},
        )
        return await process.wait()

    assert await fetch(await cluster_token(kube, namespace, "fetch"), tmp_path / "tls") == 0
    assert (tmp_path / "tls" / "node.crt").read_text() == entries[tls.cert_key(worker["ip"])]
    assert (tmp_path / "tls" / "node.key").read_text() == entries[tls.key_key(worker["ip"])]
    assert (tmp_path / "tls" / "ca.crt").read_text() == entries[tls.CA_CERT_KEY]
    assert stat.S_IMODE((tmp_path / "tls" / "node.key").stat().st_mode) == 0o600
    assert await fetch("not-a-token", tmp_path / "refused") != 0
    assert not (tmp_path / "refused" / "node.key").exists()


async def _entry_of(kube: Kube, namespace: str, cluster: str, address: str) -> dict[str, str] | None:
    entries = await _certificates(kube, namespace, cluster)
    return entries if tls.key_key(address) in entries else None
