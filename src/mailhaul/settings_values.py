"""Settings whose text holds a list: ports, proxies and the provider limits by host, each
read into its value with an error naming the setting."""

from __future__ import annotations

from mailhaul.domain.limits import HostLimits, parse_host_table
from mailhaul.domain.validation import FieldError
from mailhaul.settings_keys import InvalidSetting


def ports_setting(text: str) -> frozenset[int]:
    """``"110, 995"`` → {110, 995}; a clear error on anything else."""
    ports: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise InvalidSetting(
                "sources.allowed_ports",
                f'setting sources.allowed_ports must list TCP ports like "110,995", not {text!r}',
            )
        ports.add(int(part))
    return frozenset(ports)


def limits_setting(daily_bytes: str, connections: str) -> HostLimits:
    """The provider limits from their two settings; InvalidSetting naming the bad one."""
    tables = []
    for name, text, size in (
        ("limits.daily_bytes_per_host", daily_bytes, True),
        ("limits.connections_per_account", connections, False),
    ):
        try:
            tables.append(parse_host_table(text, size=size))
        except FieldError as exc:
            raise InvalidSetting(
                name, f"setting {name} must list HOST=VALUE entries: {exc.message}"
            ) from None
    return HostLimits(daily_bytes=tables[0], connections=tables[1])


def proxies_setting(text: str) -> tuple[str, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → the addresses and networks, normalised; a clear error on
    anything else."""
    import ipaddress

    found: list[str] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise InvalidSetting(
                "web.trusted_proxies",
                "setting web.trusted_proxies must list addresses or networks like "
                f'"127.0.0.1, 10.0.0.0/8", not {text!r}',
            ) from None
    return tuple(found)
