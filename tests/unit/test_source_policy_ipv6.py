"""The SSRF guard sees through IPv6 forms that carry an IPv4 loopback or private address."""

from __future__ import annotations

import ipaddress

import pytest

from mailhaul.domain.source_policy import SourcePolicy, is_public
from mailhaul.domain.validation import FieldError

HIDDEN_LOOPBACK = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:7f00:1",  # the same, in hex
    "::127.0.0.1",  # IPv4-compatible
    "::7f00:1",
    "::ffff:0:127.0.0.1",  # IPv4-translated (SIIT)
    "64:ff9b::7f00:1",  # NAT64, well-known prefix
    "64:ff9b:1::7f00:1",  # NAT64, local-use prefix
    "2002:7f00:1::1",  # 6to4
    "::ffff:10.0.0.1",  # private, mapped
    "2002:c0a8:101::1",  # 192.168.1.1 via 6to4
    "::169.254.169.254",  # the cloud metadata address, compatible form
]


@pytest.mark.parametrize("text", HIDDEN_LOOPBACK)
def test_ipv6_forms_of_local_ipv4_addresses_are_not_public(text: str) -> None:
    address = ipaddress.ip_address(text)
    assert not is_public(address)
    with pytest.raises(FieldError, match="private or local"):
        SourcePolicy().check_addresses("evil.example", [address])


@pytest.mark.parametrize(
    "text", ["2a00:1450:4001:80b::200e", "::ffff:93.184.216.34", "64:ff9b::5db8:d822", "1.1.1.1"]
)
def test_public_addresses_stay_allowed(text: str) -> None:
    address = ipaddress.ip_address(text)
    assert is_public(address)
    SourcePolicy().check_addresses("mail.example", [address])  # positive control: no error


def test_the_machines_own_public_address_in_an_ipv6_form_is_refused() -> None:
    own = ipaddress.ip_address("93.184.216.34")
    mapped = ipaddress.ip_address("::ffff:93.184.216.34")
    with pytest.raises(FieldError):
        SourcePolicy().check_addresses("me.example", [mapped], own=[own])
    SourcePolicy().check_addresses("other.example", [mapped], own=[])  # positive control
