"""Keeps the head autoscaler's config file equal to the cluster's autoscaler ConfigMap.

Ray's autoscaler reads its config file again on every update, so limits changed in the VMRayCluster
(max_workers, min and max workers per node type, idle timeout, upscaling speed) reach it within seconds,
without replacing the head. Runs beside Ray in the head's container, as the autoscaler's ServiceAccount.

The API server is always verified with the CA in --ca-cert: the token goes nowhere else.

    python3 autoscaler_config_sync.py --initial FILE --target FILE --api-server HOST:PORT --ca-cert FILE
        --namespace NS --config-map NAME [--interval SECONDS] [--once]

HOST:PORT is a name or an address, an IPv6 address in brackets ([2001:db8::1]:443).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

KEY = "autoscaler.yaml"


def fetch(url: str, token: str, context: ssl.SSLContext, timeout: float = 10.0) -> str | None:
    """The config in the ConfigMap at url, or None when it cannot be read now."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"autoscaler config: cannot read {url}: {error}", file=sys.stderr, flush=True)
        return None
    value = (body.get("data") or {}).get(KEY)
    return value if isinstance(value, str) else None


def trusting(ca_cert: Path) -> ssl.SSLContext | None:
    """A TLS context that trusts the API server's CA only (and checks its name or address), or None when the
    CA file cannot be read."""
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as error:
        print(f"autoscaler config: cannot use the API server's CA {ca_cert}: {error}", file=sys.stderr, flush=True)
        return None


def write_if_changed(target: Path, content: str) -> bool:
    """Replaces target atomically (a reader never sees half a file); False when it already holds content."""
    if target.exists() and target.read_text() == content:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".autoscaler-")
    with os.fdopen(handle, "w") as file:
        file.write(content)
    os.replace(temporary, target)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--initial", type=Path, required=True, help="the config cloud-init wrote at first boot")
    parser.add_argument("--target", type=Path, required=True, help="the file Ray's autoscaler reads")
    parser.add_argument("--api-server", required=True)
    parser.add_argument("--ca-cert", type=Path, required=True, help="the CA the API server is verified with")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--config-map", required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--once", action="store_true", help="sync once and exit")
    args = parser.parse_args(argv)

    if not args.target.exists():
        write_if_changed(args.target, args.initial.read_text())
    token = os.environ.get("SVC_ACCOUNT_TOKEN", "")
    if not token:
        print("autoscaler config: no SVC_ACCOUNT_TOKEN; keeping the config of first boot", file=sys.stderr)
        return 0
    context = trusting(args.ca_cert)
    if context is None:
        return 1
    url = f"https://{args.api_server}/api/v1/namespaces/{args.namespace}/configmaps/{args.config_map}"
    while True:
        content = fetch(url, token, context)
        if content is not None and write_if_changed(args.target, content):
            print(f"autoscaler config: updated {args.target}", flush=True)
        if args.once:
            return 0 if content is not None else 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
