"""Who may see and change which accounts and users (the pure rules of domain/access.py)."""

from __future__ import annotations

import ipaddress

import pytest

from mailhaul.domain.access import Principal, Role, normalise_domains, normalise_login
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.source_policy import SourcePolicy, is_public
from mailhaul.domain.validation import FieldError

ADMIN = Principal(1, "admin", Role.ADMIN)
DOMAIN_ADMIN = Principal(2, "boss@example.org", Role.DOMAIN_ADMIN, frozenset({"example.org"}))
USER = Principal(3, "Ann@example.org", Role.USER)


def test_user_sees_only_their_own_address_in_any_case():
    assert USER.may_see_address("ann@example.org")
    assert USER.may_see_address("Ann@EXAMPLE.org")
    assert not USER.may_see_address("bob@example.org")


def test_domain_admin_sees_their_domains_only():
    assert DOMAIN_ADMIN.may_see_address("anyone@example.org")
    assert DOMAIN_ADMIN.may_see_address("anyone@EXAMPLE.ORG")
    assert not DOMAIN_ADMIN.may_see_address("anyone@example.net")
    assert not DOMAIN_ADMIN.may_see_address("x@sub.example.org")  # a subdomain is another domain


def test_admin_sees_everything():
    assert ADMIN.may_see_address("x@anywhere.test")


def test_user_cannot_deliver_to_another_address():
    USER.check_account_addresses("ann@example.org", "")
    USER.check_account_addresses("ann@example.org", "ann@example.org")
    with pytest.raises(FieldError) as caught:
        USER.check_account_addresses("ann@example.org", "bob@example.org")
    assert caught.value.field == "deliver_to"
    with pytest.raises(FieldError) as caught:
        USER.check_account_addresses("bob@example.org", "")
    assert caught.value.field == "owner"


def test_domain_admin_cannot_deliver_outside_their_domains():
    DOMAIN_ADMIN.check_account_addresses("a@example.org", "b@example.org")
    with pytest.raises(FieldError, match="outside your domains"):
        DOMAIN_ADMIN.check_account_addresses("a@example.org", "b@example.net")


def test_domain_admin_manages_only_plain_users_of_their_domains():
    assert DOMAIN_ADMIN.may_manage_user("u@example.org", Role.USER)
    assert not DOMAIN_ADMIN.may_manage_user("u@example.org", Role.DOMAIN_ADMIN)
    assert not DOMAIN_ADMIN.may_manage_user("u@example.org", Role.ADMIN)
    assert not DOMAIN_ADMIN.may_manage_user("u@example.net", Role.USER)
    assert not USER.may_manage_user("ann@example.org", Role.USER)


def test_logins_are_addresses_except_an_admins_name():
    assert normalise_login("Admin", Role.ADMIN) == "admin"
    assert normalise_login("ann@Example.ORG", Role.USER) == "ann@example.org"
    with pytest.raises(ConfigError, match="login"):
        normalise_login("ann", Role.USER)
    with pytest.raises(ConfigError, match="login"):
        normalise_login("bad name", Role.ADMIN)


def test_only_domain_admins_have_domains():
    assert normalise_domains(["Example.ORG", " "], Role.DOMAIN_ADMIN) == {"example.org"}
    with pytest.raises(ConfigError, match="at least one domain"):
        normalise_domains([], Role.DOMAIN_ADMIN)
    with pytest.raises(ConfigError, match="only a domain admin"):
        normalise_domains(["example.org"], Role.USER)
    with pytest.raises(ConfigError, match="not a domain name"):
        normalise_domains(["exa mple.org"], Role.DOMAIN_ADMIN)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "224.0.0.1",
    ],
)
def test_private_and_local_addresses_are_refused_for_non_admins(address: str):
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    with pytest.raises(FieldError) as caught:
        SourcePolicy().check_addresses("mail.example.net", [ip])
    assert caught.value.field == "host"
    SourcePolicy().check_addresses("mail.example.net", [ip], privileged=True)  # admins may
    SourcePolicy(allow_private=True).check_addresses("mail.example.net", [ip])


def test_a_public_host_is_allowed_unless_it_is_our_own_address():
    public = ipaddress.ip_address("93.184.216.34")
    SourcePolicy().check_addresses("mail.example.net", [public])
    with pytest.raises(FieldError, match="private or local"):
        SourcePolicy().check_addresses("mail.example.net", [public], own=[public])


def test_one_private_address_among_public_ones_is_refused():
    addresses = [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.5")]
    with pytest.raises(FieldError):
        SourcePolicy().check_addresses("mail.example.net", addresses)


def test_ports_outside_the_list_are_refused_for_non_admins():
    policy = SourcePolicy(allowed_ports=frozenset({993, 995}))
    policy.check_port(993, privileged=False)
    with pytest.raises(FieldError, match=r"port 22 is not allowed \(allowed: 993, 995\)"):
        policy.check_port(22, privileged=False)
    policy.check_port(22, privileged=True)
