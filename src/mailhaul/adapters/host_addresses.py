"""DNS lookups for the source-host policy: what a host resolves to, and our own addresses."""

from __future__ import annotations

import ipaddress
import socket

from mailhaul.domain.source_policy import IpAddress
from mailhaul.domain.validation import FieldError


def resolve_host(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to; FieldError("host") when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FieldError("host", f"{host} does not resolve: {exc}") from None
    return sorted(
        {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos},
        key=str,
    )


def own_addresses() -> list[IpAddress]:
    """The addresses this machine's name resolves to (its public ones among them)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted(
        {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}, key=str
    )
