"""Which nodes need a Ray TLS certificate, for which addresses, and which entries have gone stale. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from vmray_operator.api.contract import Body
from vmray_operator.reconcile.observed import Observed, is_deleting, load_balancer_ip, secret_value, vm_address
from vmray_operator.render import tls


@dataclass(frozen=True)
class CertificateChanges:
    issue: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node address -> addresses to certify
    drop: list[str] = field(default_factory=list)  # node addresses whose entries go

    def __bool__(self) -> bool:
        return bool(self.issue or self.drop)


def wanted_certificates(observed: Observed, head_name: str) -> dict[str, tuple[str, ...]]:
    """Per node address, what its certificate names: the address itself, loopback, and for the head also
    the load balancer address the workers reach its GCS at (so the head's is issued once that is known)."""
    lb_ip = load_balancer_ip(observed.service)
    wanted: dict[str, tuple[str, ...]] = {}
    for name, vm in sorted(observed.vms.items()):
        address = vm_address(vm)
        if address is None or is_deleting(vm):
            continue
        ips = [address, *tls.LOCAL_IPS]
        if name == head_name:
            if not lb_ip:
                continue
            ips.append(lb_ip)
        wanted[address] = tuple(dict.fromkeys(ips))
    return wanted


def issued(secret: Body | None) -> dict[str, tuple[str, ...]]:
    """Node address -> the addresses its certificate in the Secret names."""
    data = (secret or {}).get("data") or {}
    result: dict[str, tuple[str, ...]] = {}
    for key in data:
        if key.endswith(".sans"):
            address = key.removesuffix(".sans")
            sans = secret_value(secret, key) or ""
            if data.get(tls.cert_key(address)) and data.get(tls.key_key(address)):
                result[address] = tuple(s for s in sans.split(",") if s)
    return result


def certificate_changes(wanted: dict[str, tuple[str, ...]], secret: Body | None) -> CertificateChanges:
    """New addresses and changed names are issued; an address no VM has any more is dropped."""
    have = issued(secret)
    return CertificateChanges(
        issue={address: sans for address, sans in wanted.items() if have.get(address) != sans},
        drop=sorted(set(have) - set(wanted)),
    )


def pending(observed: Observed, head_name: str, secret: Body | None) -> list[str]:
    """The VMs that have an address but no certificate for it yet, by name."""
    missing = set(certificate_changes(wanted_certificates(observed, head_name), secret).issue)
    return sorted(name for name, vm in observed.vms.items() if vm_address(vm) in missing)
