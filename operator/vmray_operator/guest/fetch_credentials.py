"""Fetches this node's Ray TLS certificate and key, and the cluster CA, before Ray starts.

The operator issues each node a certificate for the node's address into the cluster's certificates Secret
once VM Operator reports that address; this program waits for its own entry, reading the Secret with the
cluster's ServiceAccount token (SVC_ACCOUNT_TOKEN), and writes node.crt, node.key (mode 0600) and ca.crt into
the directory Ray's RAY_TLS_* variables name. Runs in the node's container; the standard library only.

    python3 tls_fetch.py --api-server HOST:PORT [--ca-cert FILE] --namespace NS --secret NAME --directory DIR
        [--address IP] [--interval SECONDS] [--timeout SECONDS]
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
import urllib.request
from pathlib import Path


def own_address(api_server: str) -> str:
    """The address this machine reaches the API server from: the VM's primary address, which Ray uses too."""
    host, _, port = api_server.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host.strip("[]"), int(port or 443)))  # no packet is sent for UDP
        return str(probe.getsockname()[0])


def read_secret(url: str, token: str, context: ssl.SSLContext) -> dict[str, str] | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        print(f"tls: cannot read the certificates Secret: HTTP {error.code}", file=sys.stderr, flush=True)
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"tls: cannot reach the API server: {error}", file=sys.stderr, flush=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-server", required=True)
    parser.add_argument("--ca-cert", help="CA of the API server; none: its certificate is not verified")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--address", help="the node's address; by default the one it reaches the API server from")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    token = os.environ.get("SVC_ACCOUNT_TOKEN", "")
    if not token:
        print("tls: no SVC_ACCOUNT_TOKEN: this node cannot fetch its certificate", file=sys.stderr)
        return 1
    context = ssl.create_default_context(cafile=args.ca_cert) if args.ca_cert else ssl._create_unverified_context()
    url = f"https://{args.api_server}/api/v1/namespaces/{args.namespace}/secrets/{args.secret}"
    deadline = time.monotonic() + args.timeout
    address = args.address or own_address(args.api_server)
    print(f"tls: waiting for the certificate of {address}", flush=True)
    while time.monotonic() < deadline:
        data = read_secret(url, token, context)
        wanted = {"node.crt": f"{address}.crt", "node.key": f"{address}.key", "ca.crt": "ca.crt"}
        if data is not None and all(data.get(key) for key in wanted.values()):
            for file_name, key in wanted.items():
                mode = 0o600 if file_name.endswith(".key") else 0o644
                write_private(args.directory / file_name, base64.b64decode(data[key]), mode)
            print(f"tls: certificate of {address} written to {args.directory}", flush=True)
            return 0
        time.sleep(args.interval)
    print(f"tls: no certificate for {address} after {args.timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
