"""Certificates and keys for the local control plane: a CA, serving and client certificates, and the
service-account signing key that makes TokenRequest work."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vmray_operator import certificates

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    """Paths of the files the control plane and its clients use."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _write(path: Path, data: str, private: bool = False) -> Path:
    path.write_text(data)
    if private:
        path.chmod(0o600)
    return path


def generate(directory: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Writes a fresh CA, an API server serving certificate for loopback (and extra_ips, where guests reach
    it), an admin client certificate (group system:masters) and a service-account key pair into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = certificates.new_ca("vmray-local-ca", _VALIDITY)
    serving = certificates.issue(
        ca,
        certificates.name("kube-apiserver"),
        [certificates.SERVER_AUTH],
        _VALIDITY,
        ips=("127.0.0.1", *extra_ips),
        dns_names=("localhost", "kubernetes.default.svc"),
    )
    admin = certificates.issue(
        ca, certificates.name("vmray-admin", "system:masters"), [certificates.CLIENT_AUTH], _VALIDITY
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Pki(
        ca_cert=_write(directory / "ca.crt", ca.cert_pem),
        ca_key=_write(directory / "ca.key", ca.key_pem, private=True),
        serving_cert=_write(directory / "apiserver.crt", serving.cert_pem),
        serving_key=_write(directory / "apiserver.key", serving.key_pem, private=True),
        admin_cert=_write(directory / "admin.crt", admin.cert_pem),
        admin_key=_write(directory / "admin.key", admin.key_pem, private=True),
        sa_key=_write(directory / "sa.key", certificates.private_key_pem(sa_key), private=True),
        sa_pub=_write(directory / "sa.pub", public.decode()),
    )
