from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from vmray_operator.local import pki


def test_certificates_chain_to_the_ca_and_admin_is_a_master(tmp_path: Path) -> None:
    files = pki.generate(tmp_path)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    serving = x509.load_pem_x509_certificate(files.serving_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(files.admin_cert.read_bytes())
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    organization = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in organization] == ["system:masters"]


def test_private_keys_are_readable_by_owner_only(tmp_path: Path) -> None:
    files = pki.generate(tmp_path)
    for key in (files.ca_key, files.serving_key, files.admin_key, files.sa_key):
        assert key.stat().st_mode & 0o077 == 0, key
