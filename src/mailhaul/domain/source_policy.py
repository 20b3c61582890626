"""Where a non-admin may point a retrieval account: no server-side request forgery.

A source host typed into the panel makes the service open a connection. By default a
non-admin may not aim it at loopback, private, link-local or otherwise special addresses
(nor the service's own), nor at ports outside a configured list. Admins may.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from mailhaul.domain.validation import FieldError

DEFAULT_ALLOWED_PORTS = frozenset({110, 143, 993, 995})

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


_NAT64 = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # RFC 6052 well-known prefix
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # RFC 8215 local-use prefix
)
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries and reaches, if any.

    IPv4-mapped (``::ffff:127.0.0.1``), IPv4-compatible (``::127.0.0.1``, deprecated but
    still routed by some stacks), IPv4-translated (``::ffff:0:127.0.0.1``), NAT64
    (``64:ff9b::7f00:1``), 6to4 (``2002:7f00:1::``) and Teredo (its client address).
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    last = ipaddress.IPv4Address(address.packed[12:])
    if address in _SIIT or any(address in net for net in _NAT64):
        return last
    if address.packed[:12] == bytes(12) and int(address) > 1:  # not :: or ::1
        return last
    return None


def is_public(address: IpAddress) -> bool:
    """Whether the address is globally routable (not loopback, private, link-local, …);
    an IPv6 form that embeds an IPv4 address is judged by that address too."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class SourcePolicy:
    """Setting ``sources.allow_private`` and ``sources.allowed_ports``."""

    allow_private: bool = False
    allowed_ports: frozenset[int] = DEFAULT_ALLOWED_PORTS

    def check_port(self, port: int, privileged: bool) -> None:
        """Refuse a port outside the list, unless the caller is an admin."""
        if privileged or port in self.allowed_ports:
            return
        allowed = ", ".join(str(p) for p in sorted(self.allowed_ports))
        raise FieldError("port", f"port {port} is not allowed (allowed: {allowed})")

    def check_addresses(
        self,
        host: str,
        addresses: Iterable[IpAddress],
        own: Iterable[IpAddress] = (),
        privileged: bool = False,
    ) -> None:
        """Refuse a host that resolves to a non-public or own address.

        ``addresses`` are what ``host`` resolves to; every one must pass, so a name with
        one public and one private address is refused too.
        """
        if privileged or self.allow_private:
            return
        own_set = set(own)
        for address in addresses:
            inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
            if address in own_set or inner in own_set or not is_public(address):
                raise FieldError(
                    "host",
                    f"{host} resolves to {address}, a private or local address; "
                    "only an admin may use such a source",
                )
