"""Fetches what a node needs from the cluster before Ray starts: its Ray TLS certificate and key with the cluster
CA, and the cluster's Ray token.

The operator issues each node a certificate for the node's address into the cluster's certificates Secret once VM
Operator reports that address, and keeps the cluster's Ray token in a Secret of its own; this program waits for
what it is asked to fetch, reading those Secrets with the cluster's ServiceAccount token (SVC_ACCOUNT_TOKEN), and
writes node.crt, node.key (mode 0600) and ca.crt into the directory Ray's RAY_TLS_* variables name, and the Ray
token (mode 0600) where RAY_AUTH_TOKEN_PATH points. Runs in the node's container; the standard library only.

The API server is always verified with the CA in --ca-cert: the token goes nowhere else.

    python3 fetch_credentials.py --api-server HOST:PORT --ca-cert FILE --namespace NS
        [--secret NAME --directory DIR] [--auth-secret NAME --auth-token-file FILE]
        [--address IP] [--interval SECONDS] [--timeout SECONDS]

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

RAY_TOKEN_KEY = "token"  # the key of Ray's token in its Secret (render/ray_auth.py)


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
            print(f"fetch: bad API server address {api_server!r}: {error}", file=sys.stderr, flush=True)
            return None
        except OSError as error:
            print(f"fetch: no route to the API server {api_server} yet: {error}", file=sys.stderr, flush=True)
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def trusting(ca_cert: Path) -> ssl.SSLContext | None:
    """A TLS context that trusts the API server's CA only (and checks its name or address), or None when the
    CA file cannot be read."""
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as error:
        print(f"fetch: cannot use the API server's CA {ca_cert}: {error}", file=sys.stderr, flush=True)
        return None


def read_secret(url: str, token: str, context: ssl.SSLContext) -> dict[str, str] | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        print(f"fetch: cannot read Secret {url.rsplit('/', 1)[-1]}: HTTP {error.code}", file=sys.stderr, flush=True)
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"fetch: cannot reach the API server: {error}", file=sys.stderr, flush=True)
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def write_private(path: Path, content: bytes, mode: int) -> None:
    """Replaces path atomically with content, created with mode (a key is never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tls-")
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def fetch_certificate(
    url: str, token: str, context: ssl.SSLContext, address: str, directory: Path, deadline: float, interval: float
) -> bool:
    """Waits for this node's entry in the certificates Secret; writes node.crt, node.key and ca.crt."""
    print(f"tls: waiting for the certificate of {address}", flush=True)
    wanted = {"node.crt": f"{address}.crt", "node.key": f"{address}.key", "ca.crt": "ca.crt"}
    while time.monotonic() < deadline:
        data = read_secret(url, token, context)
        if data is not None and all(data.get(key) for key in wanted.values()):
            for file_name, key in wanted.items():
                mode = 0o600 if file_name.endswith(".key") else 0o644
                write_private(directory / file_name, base64.b64decode(data[key]), mode)
            print(f"tls: certificate of {address} written to {directory}", flush=True)
            return True
        time.sleep(interval)
    print(f"tls: no certificate for {address} in time", file=sys.stderr)
    return False


def fetch_ray_token(
    url: str, token: str, context: ssl.SSLContext, target: Path, deadline: float, interval: float
) -> bool:
    """Waits for the cluster's Ray token; writes it to target (mode 0600), never to the log."""
    while time.monotonic() < deadline:
        data = read_secret(url, token, context)
        if data is not None and data.get(RAY_TOKEN_KEY):
            write_private(target, base64.b64decode(data[RAY_TOKEN_KEY]), 0o600)
            print(f"auth: Ray's token written to {target}", flush=True)
            return True
        time.sleep(interval)
    print("auth: no Ray token in time", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-server", required=True)
    parser.add_argument("--ca-cert", type=Path, required=True, help="the CA the API server is verified with")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--secret", help="the certificates Secret (with --directory)")
    parser.add_argument("--directory", type=Path, help="where node.crt, node.key and ca.crt go")
    parser.add_argument("--auth-secret", help="the Secret of Ray's token (with --auth-token-file)")
    parser.add_argument("--auth-token-file", type=Path, help="where Ray's token goes")
    parser.add_argument("--address", help="the node's address; by default the one it reaches the API server from")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    if (args.secret is None) != (args.directory is None) or (args.auth_secret is None) != (
        args.auth_token_file is None
    ):
        parser.error("--secret goes with --directory, and --auth-secret with --auth-token-file")

    token = os.environ.get("SVC_ACCOUNT_TOKEN", "")
    if not token:
        print("fetch: no SVC_ACCOUNT_TOKEN: this node cannot fetch its credentials", file=sys.stderr)
        return 1
    context = trusting(args.ca_cert)
    if context is None:
        return 1
    secrets = f"https://{args.api_server}/api/v1/namespaces/{args.namespace}/secrets"
    deadline = time.monotonic() + args.timeout
    if args.auth_secret and not fetch_ray_token(
        f"{secrets}/{args.auth_secret}", token, context, args.auth_token_file, deadline, args.interval
    ):
        return 1
    if args.secret:
        address = args.address or wait_for_own_address(args.api_server, deadline, args.interval)
        if address is None or not fetch_certificate(
            f"{secrets}/{args.secret}", token, context, address, args.directory, deadline, args.interval
        ):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
