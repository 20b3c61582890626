"""Users, sessions, API keys and role-scoped accounts, on SQLite and PostgreSQL."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from mailhaul.adapters.passwords import PasswordHashes
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Forbidden, Principal, Role
from mailhaul.domain.account import AccountSpec, Trigger
from mailhaul.domain.errors import NotFound
from mailhaul.domain.options import Protocol, Security
from mailhaul.domain.validation import FieldError, FieldErrors
from mailhaul.services.account_access import AccountQuery, HostLookups
from mailhaul.services.users import UserChanges, principal_of
from mailhaul.settings import load_settings

SYSTEM = Principal.system()
PASSWORD = "correct horse battery"
PUBLIC_IP = ipaddress.ip_address("93.184.216.34")


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    settings = load_settings(tmp_path / "home", {"database.url": database_url}, environ={})
    init_home(settings)
    app = App(settings)
    app.__dict__["password_hashes"] = PasswordHashes(
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    access = app.account_access
    access.hosts = HostLookups(resolve=lambda host, port: [PUBLIC_IP], own=list)  # no DNS here
    yield app
    app.db.dispose()


def spec(owner: str, host: str = "mail.example.net", **changes: object) -> AccountSpec:
    values: dict[str, object] = {
        "owner": owner,
        "protocol": Protocol.IMAP,
        "host": host,
        "port": 993,
        "security": Security.SSL,
        "username": "remote",
    }
    values.update(changes)
    return AccountSpec(**values)  # type: ignore[arg-type]


def as_principal(app: App, login: str, role: Role, domains: tuple[str, ...] = ()) -> Principal:
    return principal_of(app.users.add(SYSTEM, login, role, PASSWORD, domains))


def test_login_checks_the_argon2id_hash_and_refuses_a_disabled_user(app: App):
    user = app.users.add(SYSTEM, "ann@example.org", Role.USER, PASSWORD)
    signed_in = app.users.authenticate("ANN@example.org", PASSWORD)
    assert signed_in is not None and signed_in.id == user.id
    assert app.users.get(SYSTEM, user.id).last_login_at is not None
    assert app.users.authenticate("ann@example.org", "wrong password") is None
    assert app.users.authenticate("nobody@example.org", PASSWORD) is None
    app.users.edit(SYSTEM, user.id, UserChanges(active=False))
    assert app.users.authenticate("ann@example.org", PASSWORD) is None


def test_stored_hash_is_argon2id_and_weak_hashes_are_upgraded_at_login(app: App):
    weak = PasswordHashes(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    strong = PasswordHashes(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    app.users.hashes = weak
    user = app.users.add(SYSTEM, "ann@example.org", Role.USER, PASSWORD)
    with app.db.begin() as conn:
        found = app.users.store.by_login(conn, "ann@example.org")
    assert found is not None and found[1].startswith("$argon2id$")
    app.users.hashes = strong
    assert app.users.authenticate("ann@example.org", PASSWORD) is not None
    with app.db.begin() as conn:
        found = app.users.store.by_login(conn, "ann@example.org")
    assert found is not None and not strong.needs_rehash(found[1])
    assert user.id == found[0].id


def test_session_gives_the_user_and_ends_at_logout_or_password_change(app: App):
    user = app.users.add(SYSTEM, "ann@example.org", Role.USER, PASSWORD)
    token, csrf = app.users.start_session(user)
    info = app.users.session(token)
    assert info is not None and info.principal.login == "ann@example.org"
    assert info.csrf_token == csrf
    app.users.end_session(token)
    assert app.users.session(token) is None
    token, _ = app.users.start_session(user)
    app.users.edit(principal_of(user), user.id, UserChanges(password="another long password"))
    assert app.users.session(token) is None  # a password change signs out everywhere
    assert app.users.session("made-up") is None


def test_api_key_is_shown_once_stored_hashed_and_revocable(app: App):
    user = app.users.add(SYSTEM, "ann@example.org", Role.USER, PASSWORD)
    key, secret = app.users.create_key(SYSTEM, user.id, "cron")
    assert secret.startswith("mh_") and key.prefix == secret[:10]
    assert secret not in str(key.as_dict())
    principal = app.users.principal_for_key(secret)
    assert principal is not None and principal.login == "ann@example.org"
    assert app.users.principal_for_key(secret + "x") is None
    app.users.revoke_key(SYSTEM, key.id)
    assert app.users.principal_for_key(secret) is None


def test_domain_admin_manages_only_users_of_their_domains(app: App):
    boss = as_principal(app, "boss@example.org", Role.DOMAIN_ADMIN, ("example.org",))
    ann = app.users.add(boss, "ann@example.org", Role.USER, PASSWORD)
    other = app.users.add(SYSTEM, "zed@example.net", Role.USER, PASSWORD)
    assert [u.login for u in app.users.list_users(boss)] == ["ann@example.org"]
    with pytest.raises(NotFound):
        app.users.get(boss, other.id)
    with pytest.raises(Forbidden):
        app.users.add(boss, "x@example.net", Role.USER, PASSWORD)
    with pytest.raises(Forbidden):
        app.users.add(boss, "y@example.org", Role.DOMAIN_ADMIN, PASSWORD, ["example.org"])
    with pytest.raises(Forbidden):
        app.users.edit(boss, ann.id, UserChanges(role=Role.ADMIN))


def test_user_may_change_only_their_own_password(app: App):
    ann = as_principal(app, "ann@example.org", Role.USER)
    assert ann.user_id is not None
    app.users.edit(ann, ann.user_id, UserChanges(password="a new long password"))
    with pytest.raises(Forbidden):
        app.users.edit(ann, ann.user_id, UserChanges(role=Role.ADMIN))
    bob = app.users.add(SYSTEM, "bob@example.org", Role.USER, PASSWORD)
    with pytest.raises(NotFound):
        app.users.edit(ann, bob.id, UserChanges(password="a new long password"))


def test_the_last_admin_cannot_be_removed_or_demoted(app: App):
    admin = app.users.add(SYSTEM, "admin", Role.ADMIN, PASSWORD)
    with pytest.raises(Forbidden, match="last admin"):
        app.users.delete(SYSTEM, admin.id)
    with pytest.raises(Forbidden, match="last admin"):
        app.users.edit(SYSTEM, admin.id, UserChanges(active=False))
    second = app.users.add(SYSTEM, "root@example.org", Role.ADMIN, PASSWORD)
    app.users.edit(SYSTEM, second.id, UserChanges(role=Role.USER))
    assert app.users.get(SYSTEM, second.id).role is Role.USER


def test_user_password_rules_name_the_field(app: App):
    with pytest.raises(FieldError) as caught:
        app.users.add(SYSTEM, "ann@example.org", Role.USER, "short")
    assert caught.value.field == "password"
    app.users.add(SYSTEM, "ann@example.org", Role.USER, PASSWORD)
    with pytest.raises(FieldError, match="exists already"):
        app.users.add(SYSTEM, "Ann@Example.org", Role.USER, PASSWORD)


def test_accounts_are_listed_and_reached_within_the_callers_scope(app: App):
    access = app.account_access
    ann = as_principal(app, "ann@example.org", Role.USER)
    boss = as_principal(app, "boss@example.org", Role.DOMAIN_ADMIN, ("example.org",))
    mine = access.add(ann, spec("ann@example.org"), "pw")
    same_domain = access.add(SYSTEM, spec("bob@example.org"), "pw")
    elsewhere = access.add(SYSTEM, spec("zed@example.net"), "pw")
    assert [a.id for a in access.page(ann).items] == [mine.id]
    assert [a.id for a in access.page(boss).items] == [mine.id, same_domain.id]
    assert access.page(SYSTEM).total == 3
    assert access.domains(boss) == ["example.org"]
    for actor, hidden in ((ann, same_domain.id), (boss, elsewhere.id)):
        with pytest.raises(NotFound):
            access.get(actor, hidden)
        with pytest.raises(NotFound):
            access.delete(actor, hidden)
        with pytest.raises(NotFound):
            access.fetch_now(actor, hidden, Trigger.WEB)
    assert access.get(SYSTEM, elsewhere.id).spec.owner == "zed@example.net"


def test_list_filters_by_domain_state_and_text_and_pages(app: App):
    access = app.account_access
    for n in range(7):
        access.add(SYSTEM, spec(f"u{n}@example.org", host=f"mx{n}.example.net"), "pw")
    access.add(SYSTEM, spec("z@example.net"), "pw")
    first = access.page(SYSTEM, AccountQuery(domain="example.org", per_page=3))
    assert (first.total, first.pages, len(first.items)) == (7, 3, 3)
    last = access.page(SYSTEM, AccountQuery(domain="example.org", per_page=3, page=3))
    assert [a.owner for a in last.items] == ["u6@example.org"]
    assert [a.owner for a in access.page(SYSTEM, AccountQuery(search="MX3")).items] == [
        "u3@example.org"
    ]
    assert access.page(SYSTEM, AccountQuery(state="new")).total == 8
    assert access.page(SYSTEM, AccountQuery(state="error")).total == 0


def test_non_admins_cannot_aim_an_account_at_private_addresses_or_odd_ports(app: App):
    access = app.account_access
    ann = as_principal(app, "ann@example.org", Role.USER)
    access.hosts = replace(
        access.hosts, resolve=lambda host, port: [ipaddress.ip_address("10.0.0.5")]
    )
    with pytest.raises(FieldError) as caught:
        access.add(ann, spec("ann@example.org", host="intranet.example.net"), "pw")
    assert caught.value.field == "host"
    access.hosts = replace(access.hosts, resolve=lambda host, port: [PUBLIC_IP])
    with pytest.raises(FieldError) as caught:
        access.add(ann, spec("ann@example.org", port=22), "pw")
    assert caught.value.field == "port"
    with pytest.raises(FieldError) as caught:
        access.add(ann, spec("ann@example.org", ca_file="/etc/shadow"), "pw")
    assert caught.value.field == "ca_file"
    # an admin may, and the user may still edit other fields of such an account
    account = access.add(SYSTEM, spec("ann@example.org", host="127.0.0.1", port=1143), "pw")
    edited = access.edit(ann, account.id, spec("ann@example.org", host="127.0.0.1", port=1143,
                                                interval=900), None)  # fmt: skip
    assert edited.spec.interval == 900


def test_user_cannot_give_their_account_to_someone_else(app: App):
    access = app.account_access
    ann = as_principal(app, "ann@example.org", Role.USER)
    account = access.add(ann, spec("ann@example.org"), "pw")
    with pytest.raises(FieldError) as caught:
        access.edit(ann, account.id, spec("ann@example.org", deliver_to="bob@example.org"), None)
    assert caught.value.field == "deliver_to"
    with pytest.raises(FieldError) as caught:
        access.edit(ann, account.id, spec("bob@example.org"), None)
    assert caught.value.field == "owner"
    assert access.get(ann, account.id).spec.destination == "ann@example.org"


def test_scope_policy_and_field_errors_come_back_together(app: App):
    """A form learns every problem in one round trip: reach, source policy, CA file, the
    password and plain field errors at once."""
    access = app.account_access
    ann = as_principal(app, "ann@example.org", Role.USER)
    wrong = spec("bob@example.org", port=22, ca_file="/etc/shadow", interval=-5)
    with pytest.raises(FieldErrors) as caught:
        access.add(ann, wrong, "")
    assert set(caught.value.errors) == {"owner", "port", "ca_file", "interval", "password"}
    assert "outside" in caught.value.errors["owner"]
    assert "not allowed" in caught.value.errors["port"]
    # an edit re-targeting the stored password without it, with a bad field beside it
    account = access.add(ann, spec("ann@example.org"), "pw")
    moved = spec("ann@example.org", host="other.example.net", deliver_to="bob@example.org")
    with pytest.raises(FieldErrors) as caught:
        access.edit(ann, account.id, moved, None)
    assert set(caught.value.errors) == {"deliver_to", "password"}
    # positive control: the same edit within reach and with the password is saved
    saved = access.edit(ann, account.id, replace(moved, deliver_to=""), "pw2")
    assert saved.spec.host == "other.example.net"
