"""The programs on the nodes send the cluster's token only to an API server whose certificate comes from the CA
they were given: against an impostor on the API address they send nothing and write nothing.

Each program runs as a node runs it (its own process, the token in its environment) against an HTTPS server on
loopback that records every request and its Authorization header."""

from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vmray_operator.certificates import SERVER_AUTH, KeyPair, issue, name, new_ca

TOKEN = "token-of-the-cluster"
NODE_ADDRESS = "10.211.0.7"
LIVE_CONFIG = "max_workers: 3\n"
DAY = datetime.timedelta(days=1)


@dataclass
class Recorder:
    """What the fake API server was asked: (path, Authorization header) of every request."""

    requests: list[tuple[str, str | None]] = field(default_factory=list)
    secret_data: dict[str, str] = field(default_factory=dict)
    config_data: dict[str, str] = field(default_factory=dict)


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.requests.append((self.path, self.headers.get("Authorization")))
            data = recorder.secret_data if "/secrets/" in self.path else recorder.config_data
            body = json.dumps({"data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@dataclass(frozen=True)
class ApiServer:
    port: int
    recorder: Recorder


def _serve(certificate: KeyPair, tmp: Path) -> Iterator[ApiServer]:
    cert_file, key_file = tmp / "server.crt", tmp / "server.key"
    cert_file.write_text(certificate.cert_pem)
    key_file.write_text(certificate.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ApiServer(server.server_address[1], recorder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def expected_ca() -> KeyPair:
    return new_ca("cluster root CA", DAY)


def _server_certificate(ca: KeyPair) -> KeyPair:
    return issue(ca, name("kube-apiserver"), [SERVER_AUTH], DAY, ips=("127.0.0.1",), dns_names=("localhost",))


@pytest.fixture
def genuine(expected_ca: KeyPair, tmp_path: Path) -> Iterator[ApiServer]:
    (tmp_path / "genuine").mkdir()
    yield from _serve(_server_certificate(expected_ca), tmp_path / "genuine")


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[ApiServer]:
    """Answers on the API address with a certificate for that address, from a CA the nodes were not given."""
    (tmp_path / "impostor").mkdir()
    yield from _serve(_server_certificate(new_ca("cluster root CA", DAY)), tmp_path / "impostor")


@pytest.fixture
def ca_file(expected_ca: KeyPair, tmp_path: Path) -> Path:
    path = tmp_path / "api-server-ca.crt"
    path.write_text(expected_ca.cert_pem)
    return path


def _encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmray_operator.guest.node_agent", command, *args],
        env={"SVC_ACCOUNT_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _fetch(
    server: ApiServer, ca_file: Path, directory: Path, host: str = "127.0.0.1", address: str | None = NODE_ADDRESS
) -> int:
    for issued in (NODE_ADDRESS, "127.0.0.1"):
        server.recorder.secret_data.update(
            {f"{issued}.crt": _encoded(f"cert {issued}"), f"{issued}.key": _encoded(f"key {issued}")}
        )
    server.recorder.secret_data["ca.crt"] = _encoded("ray CA")
    result = _run(
        "fetch-credentials",
        f"--api-server={host}:{server.port}",
        f"--ca-cert={ca_file}",
        "--namespace=deploy-ray",
        "--secret=test-ray-ray-tls",
        f"--directory={directory}",
        "--interval=0.1",
        "--timeout=1",
        *([f"--address={address}"] if address else []),
    )
    return result.returncode


RAY_TOKEN = "f0" * 32


def _fetch_ray_token(server: ApiServer, ca_file: Path, target: Path) -> subprocess.CompletedProcess[str]:
    server.recorder.secret_data["token"] = _encoded(RAY_TOKEN)
    return _run(
        "fetch-credentials",
        f"--api-server=127.0.0.1:{server.port}",
        f"--ca-cert={ca_file}",
        "--namespace=deploy-ray",
        "--auth-secret=test-ray-ray-auth",
        f"--auth-token-file={target}",
        "--interval=0.1",
        "--timeout=1",
    )


def test_rays_token_is_fetched_only_from_the_genuine_server_and_kept_private(
    genuine: ApiServer, impostor: ApiServer, ca_file: Path, tmp_path: Path
) -> None:
    refused = _fetch_ray_token(impostor, ca_file, tmp_path / "stolen" / "token")
    assert refused.returncode != 0
    assert impostor.recorder.requests == []
    assert not (tmp_path / "stolen").exists()

    fetched = _fetch_ray_token(genuine, ca_file, tmp_path / "auth" / "token")
    assert fetched.returncode == 0, fetched.stderr
    assert genuine.recorder.requests == [("/api/v1/namespaces/deploy-ray/secrets/test-ray-ray-auth", f"Bearer {TOKEN}")]
    target = tmp_path / "auth" / "token"
    assert target.read_text() == RAY_TOKEN
    assert target.stat().st_mode & 0o777 == 0o600
    assert RAY_TOKEN not in fetched.stdout + fetched.stderr  # never in the node's log


def _sync(server: ApiServer, ca_file: Path, tmp_path: Path) -> tuple[int, str]:
    server.recorder.config_data["autoscaler.yaml"] = LIVE_CONFIG
    initial, target = tmp_path / "initial.yaml", tmp_path / "live.yaml"
    initial.write_text("max_workers: 0\n")
    target.write_text("max_workers: 0\n")
    result = _run(
        "sync-autoscaler-config",
        f"--initial={initial}",
        f"--target={target}",
        f"--api-server=127.0.0.1:{server.port}",
        f"--ca-cert={ca_file}",
        "--namespace=deploy-ray",
        "--config-map=test-ray-autoscaler-config",
        "--once",
    )
    return result.returncode, target.read_text()


def test_the_credentials_fetch_sends_no_token_to_an_impostor(
    impostor: ApiServer, ca_file: Path, tmp_path: Path
) -> None:
    assert _fetch(impostor, ca_file, tmp_path / "tls") != 0
    assert impostor.recorder.requests == []
    assert not (tmp_path / "tls").exists()


def test_the_credentials_fetch_reads_its_certificate_from_the_genuine_server(
    genuine: ApiServer, ca_file: Path, tmp_path: Path
) -> None:
    assert _fetch(genuine, ca_file, tmp_path / "tls") == 0
    assert genuine.recorder.requests == [("/api/v1/namespaces/deploy-ray/secrets/test-ray-ray-tls", f"Bearer {TOKEN}")]
    assert (tmp_path / "tls" / "node.crt").read_text() == f"cert {NODE_ADDRESS}"
    assert (tmp_path / "tls" / "node.key").read_text() == f"key {NODE_ADDRESS}"


def test_the_credentials_fetch_reaches_a_named_api_server_and_tells_its_own_address(
    genuine: ApiServer, ca_file: Path, tmp_path: Path
) -> None:
    """By name, and without --address: the node's address is the one it reaches the API server from."""
    assert _fetch(genuine, ca_file, tmp_path / "tls", host="localhost", address=None) == 0
    assert (tmp_path / "tls" / "node.crt").read_text() == "cert 127.0.0.1"


def test_the_credentials_fetch_has_no_unverified_mode(genuine: ApiServer, tmp_path: Path) -> None:
    for ca in ([], [f"--ca-cert={tmp_path / 'missing.crt'}"]):
        result = _run(
            "fetch-credentials",
            f"--api-server=127.0.0.1:{genuine.port}",
            *ca,
            "--namespace=deploy-ray",
            "--secret=test-ray-ray-tls",
            f"--directory={tmp_path / 'tls'}",
            f"--address={NODE_ADDRESS}",
            "--timeout=1",
        )
        assert result.returncode != 0
    assert genuine.recorder.requests == []


def test_the_config_sync_sends_no_token_to_an_impostor(impostor: ApiServer, ca_file: Path, tmp_path: Path) -> None:
    returncode, live = _sync(impostor, ca_file, tmp_path)
    assert returncode != 0
    assert impostor.recorder.requests == []
    assert live == "max_workers: 0\n"


def test_the_config_sync_follows_the_genuine_server(genuine: ApiServer, ca_file: Path, tmp_path: Path) -> None:
    returncode, live = _sync(genuine, ca_file, tmp_path)
    assert returncode == 0
    assert genuine.recorder.requests == [
        ("/api/v1/namespaces/deploy-ray/configmaps/test-ray-autoscaler-config", f"Bearer {TOKEN}")
    ]
    assert live == LIVE_CONFIG


def test_the_config_sync_has_no_unverified_mode(genuine: ApiServer, tmp_path: Path) -> None:
    initial = tmp_path / "initial.yaml"
    initial.write_text("max_workers: 0\n")
    result = _run(
        "sync-autoscaler-config",
        f"--initial={initial}",
        f"--target={tmp_path / 'live.yaml'}",
        f"--api-server=127.0.0.1:{genuine.port}",
        "--namespace=deploy-ray",
        "--config-map=test-ray-autoscaler-config",
        "--once",
    )
    assert result.returncode != 0
    assert genuine.recorder.requests == []


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.connect(("::1", 443))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_a_node_tells_its_own_address_for_an_ipv6_api_server() -> None:
    from vmray_operator.guest.node_agent import own_address

    assert own_address("[::1]:443") == "::1"
    assert own_address("127.0.0.1:6443") == "127.0.0.1"
    assert own_address("localhost:443") == "127.0.0.1"  # IPv4 first: the node's certificate names its IPv4
