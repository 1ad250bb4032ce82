"""Ray TLS: which node addresses need a certificate and what each names (pure), and the certificates made."""

from __future__ import annotations

import base64
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.specs import NAME, NOUNCE
from vmray_operator import certificates
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.tls import certificate_changes, issued, pending, wanted_certificates
from vmray_operator.render import tls

HEAD = f"{NAME}-h-{NOUNCE}"
W1, W2 = f"{NAME}-w-aaaaaaaa", f"{NAME}-w-bbbbbbbb"
LB = {"status": {"loadBalancer": {"ingress": [{"ip": "10.212.0.1"}]}}}


def vm(ip: str | None, deleting: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
    return {"metadata": meta, "status": {"network": {"primaryIP4": ip}} if ip else {}}


def secret(entries: dict[str, tuple[str, ...]]) -> dict[str, object]:
    data = {}
    for address, sans in entries.items():
        data[tls.cert_key(address)] = base64.b64encode(b"cert").decode()
        data[tls.key_key(address)] = base64.b64encode(b"key").decode()
        data[tls.sans_key(address)] = base64.b64encode(",".join(sans).encode()).decode()
    return {"data": data}


def test_each_vm_with_an_address_is_named_with_loopback() -> None:
    observed = Observed(vms={W1: vm("10.211.0.5"), W2: vm(None)}, service=LB)
    assert wanted_certificates(observed, HEAD) == {"10.211.0.5": ("10.211.0.5", "127.0.0.1")}


def test_the_heads_certificate_also_names_the_load_balancer_and_waits_for_it() -> None:
    observed = Observed(vms={HEAD: vm("10.211.0.2")}, service=LB)
    assert wanted_certificates(observed, HEAD) == {"10.211.0.2": ("10.211.0.2", "127.0.0.1", "10.212.0.1")}
    assert wanted_certificates(Observed(vms={HEAD: vm("10.211.0.2")}), HEAD) == {}


def test_a_deleting_vm_needs_no_certificate() -> None:
    assert wanted_certificates(Observed(vms={W1: vm("10.211.0.5", deleting=True)}, service=LB), HEAD) == {}


def test_changes_issue_new_and_renamed_and_drop_gone_addresses() -> None:
    wanted = {"10.211.0.5": ("10.211.0.5", "127.0.0.1"), "10.211.0.2": ("10.211.0.2", "127.0.0.1", "10.212.0.9")}
    have = secret(
        {
            "10.211.0.5": ("10.211.0.5", "127.0.0.1"),  # current
            "10.211.0.2": ("10.211.0.2", "127.0.0.1", "10.212.0.1"),  # the load balancer's address changed
            "10.211.0.7": ("10.211.0.7", "127.0.0.1"),  # its VM is gone
        }
    )
    changes = certificate_changes(wanted, have)
    assert changes.issue == {"10.211.0.2": ("10.211.0.2", "127.0.0.1", "10.212.0.9")}
    assert changes.drop == ["10.211.0.7"]
    assert not certificate_changes(wanted, secret(wanted))


def test_an_entry_without_its_key_counts_as_not_issued() -> None:
    broken = secret({"10.211.0.5": ("10.211.0.5",)})
    del broken["data"][tls.key_key("10.211.0.5")]  # type: ignore[attr-defined]
    assert issued(broken) == {}
    assert issued(None) == {}


def test_pending_names_the_vms_still_without_a_certificate() -> None:
    observed = Observed(vms={W1: vm("10.211.0.5"), W2: vm("10.211.0.6")}, service=LB)
    assert pending(observed, HEAD, secret({"10.211.0.5": ("10.211.0.5", "127.0.0.1")})) == [W2]


def test_issued_certificates_chain_to_the_ca_and_name_the_addresses() -> None:
    ca = certificates.new_ca("test ca", datetime.timedelta(days=10))
    node = certificates.issue(
        ca,
        certificates.name("node"),
        [certificates.SERVER_AUTH, certificates.CLIENT_AUTH],
        datetime.timedelta(days=1),
        ips=("10.211.0.5", "127.0.0.1"),
        dns_names=("localhost",),
    )
    cert = x509.load_pem_x509_certificate(node.cert_pem.encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem.encode()))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"10.211.0.5", "127.0.0.1"}
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    key = serialization.load_pem_private_key(node.key_pem.encode(), password=None)
    assert key.public_key() == cert.public_key()
    other = certificates.new_ca("another ca", datetime.timedelta(days=10))
    try:
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(other.cert_pem.encode()))
    except Exception:
        return
    raise AssertionError("a certificate of one CA verified against another")
