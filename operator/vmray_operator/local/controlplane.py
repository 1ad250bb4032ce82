"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and the controllers that a
Supervisor also runs for our objects (garbage collection, namespaces, service accounts)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from vmray_operator.local import pki, processes
from vmray_operator.local.tools import tool_path

# Stop order: clients of the API server first, etcd last.
STOP_ORDER = ("kube-controller-manager", "kube-apiserver", "etcd")
_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message says why and where its log is."""


@dataclass(frozen=True)
class Endpoints:
    """Where a running control plane listens; saved as state_dir/endpoints.json."""

    server: str
    etcd_client_port: int
    etcd_peer_port: int
    apiserver_port: int

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.etcd_client_port, self.etcd_peer_port, self.apiserver_port)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kubeconfig_path(state_dir: Path) -> Path:
    return state_dir / "kubeconfig"


def ca_cert_path(state_dir: Path) -> Path:
    """The CA that signs the API server's certificate (what clients of the local cloud trust)."""
    return state_dir / "pki" / "ca.crt"


def load_endpoints(state_dir: Path) -> Endpoints | None:
    path = state_dir / "endpoints.json"
    if not path.exists():
        return None
    return Endpoints(**json.loads(path.read_text()))


def _write_kubeconfig(path: Path, server: str, certs: pki.Pki) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "vmray-local",
                "cluster": {"server": server, "certificate-authority-data": b64(certs.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "vmray-admin",
                "user": {
                    "client-certificate-data": b64(certs.admin_cert),
                    "client-key-data": b64(certs.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "vmray-local",
                "context": {"cluster": "vmray-local", "user": "vmray-admin", "namespace": "default"},
            }
        ],
        "current-context": "vmray-local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


def _ready(server: str, certs: pki.Pki) -> bool:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
    try:
        with urllib.request.urlopen(f"{server}/readyz", context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(state_dir: Path, name: str, lines: int = 15) -> str:
    log = state_dir / "logs" / f"{name}.log"
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _start_etcd(state_dir: Path, endpoints: Endpoints) -> str:
    """etcd on loopback; its client URL."""
    etcd_url = f"http://127.0.0.1:{endpoints.etcd_client_port}"
    peer_url = f"http://127.0.0.1:{endpoints.etcd_peer_port}"
    processes.start(
        state_dir,
        "etcd",
        [
            str(tool_path("etcd")),
            "--name=vmray-local",
            f"--data-dir={state_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=vmray-local={peer_url}",
            "--unsafe-no-fsync=true",  # a throw-away store: durability is not worth the latency here
            "--log-level=warn",
        ],
    )
    return etcd_url


def _start_apiserver(state_dir: Path, endpoints: Endpoints, etcd_url: str, certs: pki.Pki) -> None:
    processes.start(
        state_dir,
        "kube-apiserver",
        [
            str(tool_path("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={endpoints.apiserver_port}",
            f"--cert-dir={state_dir / 'pki'}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={certs.sa_pub}",
            f"--service-account-signing-key-file={certs.sa_key}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/24",
            "--profiling=false",
            "--v=0",
        ],
    )


def _wait_ready(state_dir: Path, endpoints: Endpoints, certs: pki.Pki, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _ready(endpoints.server, certs):
        for name in ("etcd", "kube-apiserver"):
            if name not in processes.recorded(state_dir):
                down(state_dir)
                raise ControlPlaneError(f"{name} exited during start-up:\n{_log_tail(state_dir, name)}")
        if time.monotonic() > deadline:
            tail = _log_tail(state_dir, "kube-apiserver")
            down(state_dir)
            raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f} s:\n{tail}")
        time.sleep(0.1)


def _start_controller_manager(state_dir: Path, kubeconfig: Path, certs: pki.Pki) -> None:
    processes.start(
        state_dir,
        "kube-controller-manager",
        [
            str(tool_path("kube-controller-manager")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--controllers={','.join(_CONTROLLERS)}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            f"--root-ca-file={certs.ca_cert}",
            f"--service-account-private-key-file={certs.sa_key}",
            "--concurrent-gc-syncs=5",
            "--v=0",
        ],
    )


def up(state_dir: Path, timeout: float = 60.0, extra_ips: tuple[str, ...] = ()) -> Endpoints:
    """Starts etcd, kube-apiserver and kube-controller-manager; returns when /readyz answers 200.
    extra_ips: further addresses the serving certificate is valid for (where VMs reach the API)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    running = processes.recorded(state_dir)
    if running:
        raise ControlPlaneError(f"a local control plane is already running in {state_dir}: {sorted(running)}")
    shutil.rmtree(state_dir / "etcd", ignore_errors=True)  # every local cloud starts empty
    certs = pki.generate(state_dir / "pki", extra_ips)
    port = free_port()
    endpoints = Endpoints(f"https://127.0.0.1:{port}", free_port(), free_port(), port)
    etcd_url = _start_etcd(state_dir, endpoints)
    _start_apiserver(state_dir, endpoints, etcd_url, certs)
    kubeconfig = kubeconfig_path(state_dir)
    _write_kubeconfig(kubeconfig, endpoints.server, certs)
    (state_dir / "endpoints.json").write_text(json.dumps(asdict(endpoints)))
    _wait_ready(state_dir, endpoints, certs, timeout)
    _start_controller_manager(state_dir, kubeconfig, certs)
    return endpoints


def down(state_dir: Path) -> None:
    """Stops every process of the local cloud (also the simulator and operator if recorded here)."""
    # The simulator drains its Ray nodes before it exits; give it the time to.
    processes.stop_all(state_dir, order=("operator", "simulator", *STOP_ORDER), timeouts={"simulator": 60.0})
