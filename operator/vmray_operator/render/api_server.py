"""The Supervisor API address a cluster's nodes reach, in every form people write it, made into the one form
the guests and Ray's vSphere provider use: `host:port`, or `[IPv6]:port`, with no scheme (they put
`https://` in front themselves)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmray_operator.render.context import ClusterContext

DEFAULT_PORT = 443  # the Supervisor's API, as `kubectl vsphere login` reaches it
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
_FORM_HINT = "write an IP address or host name, optionally with :port, or https://host[:port]"


@dataclass(frozen=True)
class ApiServerAddress:
    host: str  # a host name, or an IP address (IPv6 without brackets)
    port: int

    @property
    def authority(self) -> str:
        """`host:port`, with an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_api_server(location: str) -> ApiServerAddress:
    """The address in location: an IPv4 address, a host name, either with `:port`, an IPv6 address bare or in
    brackets (then optionally with `:port`), or any of those as an `https://` URL with an optional trailing
    slash. The port is 443 unless one is given. ValueError says what is wrong with anything else."""
    text = location.strip()
    if not text:
        raise ValueError("the address is empty")
    if any(character.isspace() for character in text):
        raise ValueError(f"it contains a space; {_FORM_HINT}")
    authority = _without_scheme(text)
    if "@" in authority:
        raise ValueError("user names or passwords do not belong in the address; the nodes use their own token")
    if any(character in authority for character in "/?#"):
        raise ValueError(f"a path, query or fragment is not part of the API server's address; {_FORM_HINT}")
    host, port = _split(authority)
    return ApiServerAddress(_checked_host(host), _checked_port(port))


def _without_scheme(text: str) -> str:
    scheme, separator, rest = text.partition("://")
    if not separator:
        return text
    if scheme.lower() == "http":
        raise ValueError("http:// is not accepted: the Supervisor's API speaks HTTPS only (write https:// or none)")
    if scheme.lower() != "https":
        raise ValueError(f"the scheme {scheme}:// is not accepted: the API server is reached over https://")
    return rest.removesuffix("/")


def _split(authority: str) -> tuple[str, str | None]:
    """Host and port text; the port None when the address names none."""
    if authority.startswith("["):
        host, closed, rest = authority[1:].partition("]")
        if not closed:
            raise ValueError("the IPv6 address opened with [ is not closed with ]")
        if not rest:
            return _ipv6(host), None
        if not rest.startswith(":"):
            raise ValueError(f"after the IPv6 address in brackets only :port may follow, not {rest!r}")
        return _ipv6(host), rest[1:]
    if authority.count(":") > 1:  # a bare IPv6 address: every colon is part of it
        return _ipv6(authority, hint=" (to give a port, write [IPv6 address]:port)"), None
    host, colon, port = authority.partition(":")
    return host, port if colon else None


def _ipv6(text: str, hint: str = "") -> str:
    if "%" in text:
        raise ValueError(f"{text!r} names an interface zone, which an API server's address cannot use")
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid IPv6 address{hint}") from None


def _checked_host(host: str) -> str:
    if not host:
        raise ValueError(f"the host is missing; {_FORM_HINT}")
    if ":" in host:  # already checked as an IPv6 address
        return host
    if _DIGITS_AND_DOTS.fullmatch(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv4 address") from None
    name = host.removesuffix(".")
    odd = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in ".-"))})
    if odd:
        raise ValueError(f"{host!r} contains characters no host name has: {' '.join(odd)}")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(
            f"{host!r} is not a valid host name (dot-separated parts of 1 to 63 letters, digits or hyphens, "
            "not starting or ending with a hyphen)"
        )
    return name


def _checked_port(port: str | None) -> int:
    if port is None:
        return DEFAULT_PORT
    if not port:
        raise ValueError("the port after ':' is empty")
    if not (port.isascii() and port.isdigit()):
        raise ValueError(f"the port {port!r} is not a number")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"the port {int(port)} is out of range (1 to 65535)")
    return int(port)


def api_server_problem(ctx: ClusterContext) -> str | None:
    """What is wrong with the API address the cluster's nodes would use, as one line naming the field; None
    when it is usable, or when the cluster's nodes never reach the API (no autoscaler from the operator, no
    TLS)."""
    if not ctx.has_identity:
        return None
    location = ctx.api_server_location
    if not location:
        return (
            "spec.api_server.location is empty and the operator has no default "
            "(install value supervisor.apiServerLocation)"
        )
    try:
        parse_api_server(location)
    except ValueError as error:
        if (ctx.spec.api_server.location or "").strip():
            return f"spec.api_server.location {location!r} is not usable: {error}"
        return f"the operator's default API server location {location!r} is not usable: {error}"
    return None
