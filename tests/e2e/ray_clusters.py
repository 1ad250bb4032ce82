"""Helpers of the end-to-end tests: Ready sample clusters with real Ray, Ray's own node list, Ray jobs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.conftest import GUEST_API
from tests.support.clusters import delete_cluster, sample, wait_condition
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube

READY_TIMEOUT = 240.0
RAY_CLI = str(Path(sys.executable).parent / "ray")


@dataclass(frozen=True)
class RayAccess:
    """What a data scientist is handed: the dashboard address of the cluster's status and Ray's token from the
    Secret the status names (None: the cluster asks for none)."""

    dashboard: str
    token: str | None

    def auth_env(self) -> dict[str, str]:
        """What `ray` commands need in their environment to present the token."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token} if self.token else {}


async def ray_access(kube: Kube, cluster: dict[str, Any]) -> RayAccess:
    endpoints = cluster["status"]["endpoints"]
    secret_name = endpoints.get("auth_token_secret")
    token = None
    if secret_name:
        secret = await kube.get(r.SECRETS, secret_name, cluster["metadata"]["namespace"])
        assert secret is not None, f"the Secret {secret_name} the status names does not exist"
        token = base64.b64decode(secret["data"]["token"]).decode()
    return RayAccess(endpoints["dashboard"], token)


async def _state(access: RayAccess, what: str) -> list[dict[str, Any]]:
    """One listing of Ray's state API (nodes, tasks, ...), with the token."""
    headers = {"Authorization": f"Bearer {access.token}"} if access.token else {}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(
            f"{access.dashboard}/api/v0/{what}?limit=1000&detail=true", timeout=aiohttp.ClientTimeout(total=10)
        ) as response,
    ):
        body = await response.json(content_type=None)
    listed: list[dict[str, Any]] = body["data"]["result"]["result"]
    return listed


async def ray_nodes(access: RayAccess) -> list[dict[str, Any]]:
    return await _state(access, "nodes")


async def ray_tasks(access: RayAccess) -> list[dict[str, Any]]:
    return await _state(access, "tasks")


async def create_cluster(kube: Kube, namespace: str, name: str, **spec: Any) -> None:
    """The sample, with the heads' autoscalers pointed at where the simulated VMs reach the API server."""
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, name, api_server={"location": GUEST_API}, **spec), namespace)


async def ready_cluster(kube: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    await create_cluster(kube, namespace, name, **spec)
    return await wait_condition(kube, namespace, name, "Ready", timeout=READY_TIMEOUT)


def sample_spec_part(part: str, **changes: Any) -> dict[str, Any]:
    """One part of the sample's spec (common_node_config, head_node, ...) with changes."""
    spec: dict[str, Any] = sample("-")["spec"]
    return {**spec[part], **changes}


@contextlib.asynccontextmanager
async def ray_cluster(kube: Kube, namespace: str, name: str, **spec: Any) -> AsyncIterator[dict[str, Any]]:
    """A Ready cluster, deleted (and waited for) afterwards: two machines' worth of Ray at once is enough."""
    try:
        yield await ready_cluster(kube, namespace, name, **spec)
    finally:
        await delete_cluster(kube, namespace, name, timeout=180)


async def submit_job(access: RayAccess, working_dir: Path, *entrypoint: str) -> subprocess.CompletedProcess[str]:
    """`ray job submit` through the dashboard address, with Ray's token, as a data scientist runs it; waits for
    the job."""
    argv = [RAY_CLI, "job", "submit", "--address", access.dashboard, "--working-dir", str(working_dir)]
    return await asyncio.to_thread(
        subprocess.run,
        [*argv, "--", *entrypoint],
        env={**os.environ, **access.auth_env()},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def processes_of(vm_names: set[str]) -> list[int]:
    """Processes that run as part of one of these VMs (their guest or container environment names the VM)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for variable in environ:
            key, _, value = variable.partition(b"=")
            if key in (b"RAY_CLOUD_INSTANCE_ID", b"VMRAY_GUEST_HOSTNAME") and value.decode() in vm_names:
                found.append(int(entry.name))
                break
    return found


# What a gRPC client sends first (RFC 9113 section 3.4): the connection preface and an empty SETTINGS frame.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def grpc_over_tls_answers(
    address: str, port: int, ca_pem: str, client: tuple[str, str] | None, directory: Path
) -> tuple[bool, set[str]]:
    """Opens TLS to a Ray gRPC port, verifying the server against ca_pem, optionally with a client certificate
    and key; (whether the server answered the HTTP/2 preface, the IP addresses its certificate names)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_pem)
    context.set_alpn_protocols(["h2"])  # gRPC servers speak to no one else
    if client is not None:
        (directory / "client.crt").write_text(client[0])
        (directory / "client.key").write_text(client[1])
        context.load_cert_chain(directory / "client.crt", directory / "client.key")
    with (
        socket.create_connection((address, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=address) as conn,
    ):
        sans: Any = (conn.getpeercert() or {}).get("subjectAltName", ())
        names = {str(value) for kind, value in sans if kind == "IP Address"}
        try:
            conn.sendall(HTTP2_PREFACE)
            answered = len(conn.recv(64)) > 0
        except (ssl.SSLError, ConnectionError):
            answered = False  # the server refused this client (TLS 1.3 says so after the handshake)
    return answered, names
