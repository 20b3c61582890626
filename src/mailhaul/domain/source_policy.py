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


def is_public(address: IpAddress) -> bool:
    """Whether the address is globally routable (not loopback, private, link-local, …)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
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
            if address in own_set or not is_public(address):
                raise FieldError(
                    "host",
                    f"{host} resolves to {address}, a private or local address; "
                    "only an admin may use such a source",
                )
