"""Hands the operator's Kubernetes credentials to kopf, so kopf and kube/ use the same identity."""

from __future__ import annotations

import kopf
import kubernetes.client


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    token = configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization")
    scheme, token = ("Bearer", token.split(" ", 1)[-1]) if token else (None, None)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        default_namespace=None,
    )
