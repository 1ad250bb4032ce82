"""What a node does with the Supervisor's API as the cluster's ServiceAccount (its token in SVC_ACCOUNT_TOKEN),
beside Ray in the node's container. Standard library only: cloud-init writes this one file onto the VM.

fetch-credentials, before Ray starts: waits for what the node needs from the cluster and writes it where Ray
reads it: its Ray TLS certificate and key with the cluster CA (node.crt, node.key mode 0600, ca.crt, in the
directory Ray's RAY_TLS_* variables name), issued by the operator for the node's address once VM Operator reports
it; and the cluster's Ray token (mode 0600, where RAY_AUTH_TOKEN_PATH points).

sync-autoscaler-config, on the head: keeps the file Ray's autoscaler rereads equal to the cluster's autoscaler
ConfigMap, so limits changed in the VMRayCluster reach it within seconds without replacing the head.

The API server is always verified with the CA in --ca-cert: the token goes nowhere else.

    python3 node_agent.py fetch-credentials --api-server HOST:PORT --ca-cert FILE --namespace NS
        [--secret NAME --directory DIR] [--auth-secret NAME --auth-token-file FILE]
        [--address IP] [--interval SECONDS] [--timeout SECONDS]
    python3 node_agent.py sync-autoscaler-config --api-server HOST:PORT --ca-cert FILE --namespace NS
        --initial FILE --target FILE --config-map NAME [--interval SECONDS] [--once]

HOST:PORT is a name or an address, an IPv6 address in brackets ([2001:db8::1]:443).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

RAY_TOKEN_KEY = "token"  # the key of Ray's token in its Secret (render/ray_auth.py)
AUTOSCALER_CONFIG_KEY = "autoscaler.yaml"  # the key of the autoscaler's ConfigMap (render/autoscaler.py)


def say(what: str, message: str, problem: bool = False) -> None:
    print(f"{what}: {message}", file=sys.stderr if problem else sys.stdout, flush=True)


def trusting(ca_cert: Path) -> ssl.SSLContext | None:
    """A TLS context that trusts the API server's CA only (and checks its name or address), or None when the
    CA file cannot be read."""
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as error:
        say("agent", f"cannot use the API server's CA {ca_cert}: {error}", problem=True)
        return None


def read_data(url: str, token: str, context: ssl.SSLContext) -> dict[str, Any] | None:
    """The `data` of the Secret or ConfigMap at url, or None when it cannot be read now (said why)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        say("agent", f"cannot read {url.rsplit('/', 2)[-2]} {url.rsplit('/', 1)[-1]}: HTTP {error.code}", True)
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        say("agent", f"cannot reach the API server: {error}", problem=True)
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def write_atomically(path: Path, content: bytes, mode: int) -> None:
    """Replaces path with content, created with mode: a reader never sees half a file, and a key is never
    readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def own_address(api_server: str) -> str:
    """The address this machine reaches the API server from: the VM's primary address, which Ray uses too.
    IPv4 first when the API server's name has both kinds (VM Operator reports a VM's IPv4 address, and the
    node's certificate is issued for it)."""
    target = urllib.parse.urlsplit(f"https://{api_server}")
    if not target.hostname:
        raise ValueError(f"no host in the API server address {api_server!r}")
    found = socket.getaddrinfo(target.hostname, target.port or 443, type=socket.SOCK_DGRAM)
    found.sort(key=lambda entry: entry[0] != socket.AF_INET)
    last_error: OSError = OSError(f"{target.hostname} has no address")
    for family, kind, protocol, _, socket_address in found:
        try:
            with socket.socket(family, kind, protocol) as probe:
                probe.connect(socket_address)  # no packet is sent for UDP: this only picks the route
                return str(probe.getsockname()[0])
        except OSError as error:  # no route in this family
            last_error = error
    raise last_error


def wait_for_own_address(api_server: str, deadline: float, interval: float) -> str | None:
    """own_address, tried again while the network (or name service) is still coming up; None at the deadline
    or when the address cannot be understood."""
    while True:
        try:
            return own_address(api_server)
        except ValueError as error:
            say("tls", f"bad API server address {api_server!r}: {error}", problem=True)
            return None
        except OSError as error:
            say("tls", f"no route to the API server {api_server} yet: {error}", problem=True)
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def fetch_certificate(url: str, token: str, context: ssl.SSLContext, args: argparse.Namespace, deadline: float) -> bool:
    """Waits for this node's entry in the certificates Secret; writes node.crt, node.key and ca.crt."""
    address = args.address or wait_for_own_address(args.api_server, deadline, args.interval)
    if address is None:
        return False
    say("tls", f"waiting for the certificate of {address}")
    wanted = {"node.crt": f"{address}.crt", "node.key": f"{address}.key", "ca.crt": "ca.crt"}
    while time.monotonic() < deadline:
        data = read_data(url, token, context)
        if data is not None and all(data.get(key) for key in wanted.values()):
            for file_name, key in wanted.items():
                mode = 0o600 if file_name.endswith(".key") else 0o644
                write_atomically(args.directory / file_name, base64.b64decode(data[key]), mode)
            say("tls", f"certificate of {address} written to {args.directory}")
            return True
        time.sleep(args.interval)
    say("tls", f"no certificate for {address} in time", problem=True)
    return False


def fetch_ray_token(url: str, token: str, context: ssl.SSLContext, args: argparse.Namespace, deadline: float) -> bool:
    """Waits for the cluster's Ray token; writes it to its file (mode 0600), never to the log."""
    while time.monotonic() < deadline:
        data = read_data(url, token, context)
        if data is not None and data.get(RAY_TOKEN_KEY):
            write_atomically(args.auth_token_file, base64.b64decode(data[RAY_TOKEN_KEY]), 0o600)
            say("auth", f"Ray's token written to {args.auth_token_file}")
            return True
        time.sleep(args.interval)
    say("auth", "no Ray token in time", problem=True)
    return False


def fetch_credentials(args: argparse.Namespace, token: str, context: ssl.SSLContext) -> int:
    secrets = f"https://{args.api_server}/api/v1/namespaces/{args.namespace}/secrets"
    deadline = time.monotonic() + args.timeout
    if args.auth_secret and not fetch_ray_token(f"{secrets}/{args.auth_secret}", token, context, args, deadline):
        return 1
    if args.secret and not fetch_certificate(f"{secrets}/{args.secret}", token, context, args, deadline):
        return 1
    return 0


def sync_autoscaler_config(args: argparse.Namespace, token: str, context: ssl.SSLContext) -> int:
    url = f"https://{args.api_server}/api/v1/namespaces/{args.namespace}/configmaps/{args.config_map}"
    while True:
        data = read_data(url, token, context)
        content = (data or {}).get(AUTOSCALER_CONFIG_KEY)
        current = args.target.read_text() if args.target.exists() else None
        if isinstance(content, str) and content != current:
            write_atomically(args.target, content.encode(), 0o644)
            say("autoscaler config", f"updated {args.target}")
        if args.once:
            return 0 if isinstance(content, str) else 1
        time.sleep(args.interval)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch-credentials", help="the node's TLS certificate and Ray's token")
    sync = commands.add_parser("sync-autoscaler-config", help="the head autoscaler's config, kept current")
    for command in (fetch, sync):
        command.add_argument("--api-server", required=True)
        command.add_argument("--ca-cert", type=Path, required=True, help="the CA the API server is verified with")
        command.add_argument("--namespace", required=True)
    fetch.add_argument("--secret", help="the certificates Secret (with --directory)")
    fetch.add_argument("--directory", type=Path, help="where node.crt, node.key and ca.crt go")
    fetch.add_argument("--auth-secret", help="the Secret of Ray's token (with --auth-token-file)")
    fetch.add_argument("--auth-token-file", type=Path, help="where Ray's token goes")
    fetch.add_argument("--address", help="the node's address; by default the one it reaches the API server from")
    fetch.add_argument("--interval", type=float, default=1.0)
    fetch.add_argument("--timeout", type=float, default=900.0)
    sync.add_argument("--initial", type=Path, required=True, help="the config cloud-init wrote at first boot")
    sync.add_argument("--target", type=Path, required=True, help="the file Ray's autoscaler reads")
    sync.add_argument("--config-map", required=True)
    sync.add_argument("--interval", type=float, default=10.0)
    sync.add_argument("--once", action="store_true", help="sync once and exit")
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    fetching = args.command == "fetch-credentials"
    if fetching and ((args.secret is None) != (args.directory is None)) | (
        (args.auth_secret is None) != (args.auth_token_file is None)
    ):
        parser().error("--secret goes with --directory, and --auth-secret with --auth-token-file")
    if not fetching and not args.target.exists():
        write_atomically(args.target, args.initial.read_bytes(), 0o644)  # Ray's autoscaler starts with it
    token = os.environ.get("SVC_ACCOUNT_TOKEN", "")
    if not token:
        say("agent", "no SVC_ACCOUNT_TOKEN: this node cannot reach the cluster's API", problem=True)
        return 1 if fetching else 0  # without it the autoscaler keeps the config of first boot
    context = trusting(args.ca_cert)
    if context is None:
        return 1
    return fetch_credentials(args, token, context) if fetching else sync_autoscaler_config(args, token, context)


if __name__ == "__main__":
    sys.exit(main())
