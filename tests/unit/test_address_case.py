"""One person, one mailbox: an address is stored and compared in lower case, local part too,
wherever it becomes an identity (owner, destination, login) or a path (the Maildir)."""

from __future__ import annotations

from mailhaul.domain.access import Principal, Role, normalise_login
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.domain.validation import validated_spec


def spec(owner: str, deliver_to: str = "") -> AccountSpec:
    return AccountSpec(
        owner=owner,
        protocol=Protocol.POP3,
        host="mail.example.net",
        port=995,
        security=Security.SSL,
        username="Alice",  # the source's login is the source's business: kept as typed
        deliver_to=deliver_to,
    )


def test_owner_and_destination_are_stored_in_lower_case():
    checked = validated_spec(spec("Alice@Example.ORG", "ALICE@example.org"))
    assert (checked.owner, checked.deliver_to) == ("alice@example.org", "alice@example.org")
    assert checked.username == "Alice"
    assert validated_spec(spec("alice@example.org")).destination == checked.destination


def test_logins_that_are_addresses_are_lower_case_like_admin_names():
    assert normalise_login("Alice@Example.ORG", Role.USER) == "alice@example.org"
    assert normalise_login("Boss@Example.org", Role.DOMAIN_ADMIN) == "boss@example.org"
    assert normalise_login("Root", Role.ADMIN) == "root"


def test_a_user_reaches_their_accounts_in_any_spelling():
    alice = Principal(3, normalise_login("Alice@Example.ORG", Role.USER), Role.USER)
    alice.check_account_addresses("ALICE@example.org", "Alice@EXAMPLE.org")
    assert alice.may_see_address("alice@example.org")
    assert not alice.may_see_address("alicia@example.org")
