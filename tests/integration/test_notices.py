"""Notices when an account breaks, against a real Dovecot: one per incident into the owner's
own mailbox, none more while it keeps failing, one when it works again; a missing
destination is told to the admins over LMTP, not to the address that does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mailhaul.adapters.db.incidents import IncidentStore
from mailhaul.adapters.db.users import UserStore
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.incidents import NoticePolicy
from mailhaul.domain.options import Protocol, Security
from mailhaul.services.incidents import IncidentTracker
from support.dovecot import DovecotServer, Mailbox
from support.mailhaul_home import Home

NOTICE = b"X-Mailhaul-Notice: "


def owners_pop3s(mailbox: Mailbox) -> AccountSpec:
    """owner@a.test's account on the mailbox, over POP3S checked against the test CA."""
    return AccountSpec(
        owner="owner@a.test",
        protocol=Protocol.POP3,
        host="localhost",
        port=mailbox.ports.pop3s,
        security=Security.SSL,
        username=mailbox.user,
        ca_file=str(mailbox.server.ca_path),
    )


def notices_in(maildir: Path) -> list[bytes]:
    found = []
    for sub in ("new", "cur"):
        for path in sorted((maildir / sub).glob("*")) if (maildir / sub).is_dir() else []:
            data = path.read_bytes()
            if NOTICE in data.split(b"\n\n", 1)[0]:
                found.append(data)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home", "[notify]\nafter_failures = 3\n")
    yield home
    home.app.db.dispose()


def test_one_notice_per_incident_and_one_when_it_recovers(home: Home, mailbox: Mailbox):
    account = home.add(mailbox, Protocol.POP3, password="not-the-password-1")
    sender = home.app.notice_sender
    for _ in range(2):
        assert home.poll(account).result == "error"
    assert sender.send_due() == 0  # not due yet: two failures, a few seconds
    assert home.poll(account).result == "error"  # the third
    assert sender.send_due() == 1
    (notice,) = notices_in(home.maildir_for())
    assert b"Subject: mailhaul: account %d" % account.id in notice
    assert b"Auto-Submitted: auto-generated" in notice
    assert b"X-Mailhaul-Notice: account.failing" in notice
    assert mailbox.user.encode() in notice and b"Since: " in notice
    assert b"not-the-password-1" not in notice
    for _ in range(3):  # failing on, then paused after five: still the one incident
        home.poll(account)
    assert home.app.accounts.get(account.id).paused_reason is not None
    assert sender.send_due() == 0 and len(notices_in(home.maildir_for())) == 1
    (incident,) = home.app.incidents.listed(None)
    assert incident.open and incident.failures == 6 and incident.kind == "paused"

    fixed = home.app.accounts.edit(account.id, account.spec, mailbox.password)
    assert home.poll(fixed).result == "ok"
    assert sender.send_due() == 1
    failing, recovered = notices_in(home.maildir_for())
    assert failing == notice
    assert b"X-Mailhaul-Notice: account.recovered" in recovered and b"works again" in recovered
    assert home.app.incidents.listed(None) == []  # closed
    assert home.poll(fixed).result == "ok" and sender.send_due() == 0


def test_a_passing_fault_below_the_threshold_tells_no_one(home: Home, mailbox: Mailbox):
    account = home.add(mailbox, Protocol.POP3, password="not-the-password-2")
    assert home.poll(account).result == "error"
    fixed = home.app.accounts.edit(account.id, account.spec, mailbox.password)
    assert home.poll(fixed).result == "ok"
    assert home.app.notice_sender.send_due() == 0
    assert notices_in(home.maildir_for()) == []
    (closed,) = home.app.incidents.listed(None, open_only=False)
    assert closed.closed_at is not None and closed.notified_at is None


def test_a_missing_destination_is_told_to_the_admins_over_lmtp(
    tmp_path: Path, dovecot: DovecotServer
):
    toml = f'[delivery]\nmethod = "lmtp"\nlmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
    home = Home.create(tmp_path / "home", toml)
    try:
        source, admin_box, domain_admin_box = (dovecot.new_mailbox() for _ in range(3))
        system = Principal.system()
        home.app.users.add(system, admin_box.user, Role.ADMIN, "a-long-enough-password")
        home.app.users.add(system, "admin", Role.ADMIN, "a-long-enough-password")  # no address
        source.deliver(b"Subject: waiting\n\nfor a mailbox\n")
        account = home.add(source, Protocol.IMAP, deliver_to="nobody-here@example.test")
        assert home.poll(account).result == "error"
        assert home.app.notice_sender.send_due() == 1  # at once: a person has to act
        (notice,) = [m.raw for m in admin_box.list_messages()]
        assert b"does not exist" in notice and b"nobody-here@example.test" in notice
        assert domain_admin_box.list_messages() == []  # not an admin of anything
        assert len(source.list_messages()) == 1  # and the mail waits on the server
    finally:
        home.app.db.dispose()


def test_notices_can_be_switched_off(tmp_path: Path, mailbox: Mailbox):
    home = Home.create(tmp_path / "home", "[notify]\nmailbox = false\nafter_failures = 1\n")
    try:
        account = home.add(mailbox, Protocol.POP3, password="not-the-password-3")
        assert home.poll(account).result == "error"
        assert home.app.notice_sender.send_due() == 0
        assert home.app.incidents.listed(None) == []
        # positive control: the same home with notices on opens the incident
        tracker = IncidentTracker(IncidentStore(), UserStore(), NoticePolicy(after_failures=1))
        home.app.poller.deps = replace(home.app.poller.deps, incidents=tracker)
        assert home.poll(account).result == "error"
        assert len(home.app.incidents.listed(None)) == 1
    finally:
        home.app.db.dispose()


def test_incidents_in_the_api_and_on_the_account_page(tmp_path: Path, mailbox: Mailbox):
    from fastapi.testclient import TestClient

    from mailhaul.web.app import create_app
    from support.api import PASSWORD, Api, add_person, make_app
    from support.pages import Browser

    app = make_app(tmp_path / "home", overrides={"notify.after_failures": 1})
    try:
        owner = add_person(app, "owner", "owner@a.test", Role.USER)
        other = add_person(app, "other", "other@a.test", Role.USER)
        spec = owners_pop3s(mailbox)
        account = app.accounts.add(spec, "not-the-password-4")
        assert app.poller.poll(account.id).result == "error"
        client = TestClient(create_app(app), base_url="https://testserver")
        (incident,) = Api(client, owner.key).get("/incidents").json()
        assert (incident["account_id"], incident["kind"], incident["open"]) == (
            account.id,
            "failing",
            True,
        )
        assert incident["notices"][0]["recipient"] == "owner@a.test"
        assert Api(client, other.key).get("/incidents").json() == []
        assert Api(client, other.key).get(f"/incidents?account={account.id}").status_code == 404
        browser = Browser(client)
        assert browser.login("owner@a.test", PASSWORD).status_code == 303
        page = browser.get(f"/accounts/{account.id}").text
        assert 'id="incident"' in page and "failing since" in page
        assert 'id="incidents"' in page and "<strong>open</strong>" in page  # the history
        assert "owner@a.test (pending)" in page  # queued; the service sends it
        gauges = client.get("/metrics").text
        assert "mailhaul_open_incidents 1.0" in gauges
    finally:
        app.db.dispose()


class Killed(BaseException):
    """Stands for the process dying at that point (nothing after it runs)."""


def _failing_accounts(home: Home, mailbox: Mailbox, count: int) -> list[int]:
    from support.local_servers import free_ports

    (closed,) = free_ports(1)  # nothing listens: each run fails at once
    ids = []
    for n in range(count):
        account = home.add(mailbox, Protocol.POP3, folders=("INBOX",))
        spec = replace(account.spec, port=closed, username=f"{mailbox.user}-{n}")
        ids.append(home.app.accounts.edit(account.id, spec, mailbox.password).id)
    return ids


def test_fifty_failing_accounts_of_one_owner_make_one_digest(tmp_path: Path, mailbox: Mailbox):
    home = Home.create(tmp_path / "home", "[notify]\nafter_failures = 1\n")
    try:
        ids = _failing_accounts(home, mailbox, 50)
        for account_id in ids:
            assert home.app.poller.poll(account_id).result == "error"
        sender = home.app.notice_sender
        assert sender.send_due(settle=60) == 0  # a running service lets them settle first
        assert sender.send_due() == 1  # then one message for the fifty
        (digest,) = notices_in(home.maildir_for())
        assert b"50 accounts have stopped fetching mail" in digest
        assert all(b"account %d," % account_id in digest for account_id in ids)
        assert all(i.notified_at for i in home.app.incidents.listed(None))
        assert sender.send_due() == 0
    finally:
        home.app.db.dispose()


def test_a_crash_between_delivering_and_marking_sends_nothing_twice(
    home: Home, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
):
    first, second = _failing_accounts(home, mailbox, 2)
    sender = home.app.notice_sender
    store = sender.store
    for account_id in (first, second):
        for _ in range(3):
            home.app.poller.poll(account_id)
    marked = store.sent

    def die_once(*args: object) -> None:
        monkeypatch.setattr(store, "sent", marked)
        raise Killed

    monkeypatch.setattr(store, "sent", die_once)  # delivered, then killed before the mark
    with pytest.raises(Killed):
        sender.send_due()
    assert len(notices_in(home.maildir_for())) == 1
    assert sender.send_due() == 0  # found by its receipt: marked, not delivered again
    assert len(notices_in(home.maildir_for())) == 1
    (incident_notice,) = home.app.incidents.notices_of(home.app.incidents.listed([first])[0].id)
    assert incident_notice["state"] == "sent"

    # killed after recording the receipt, before delivering: delivered once on the next call
    real_open = home.app.sink.open_session

    def open_then_die(label: str):
        session = real_open(label)
        monkeypatch.setattr(session, "begin", _raise_killed)
        return session

    for account_id in (first, second):  # both work again: recovery notices
        home.app.accounts.edit(account_id, _working(home, account_id, mailbox), mailbox.password)
        assert home.app.poller.poll(account_id).result == "ok"
    monkeypatch.setattr(home.app.sink, "open_session", open_then_die)
    with pytest.raises(Killed):
        sender.send_due()
    monkeypatch.setattr(home.app.sink, "open_session", real_open)
    assert sender.send_due() == 1
    recovered = [n for n in notices_in(home.maildir_for()) if b"account.recovered" in n]
    assert len(recovered) == 1 and b"2 accounts work again" in recovered[0]


def _raise_killed(*args: object) -> None:
    raise Killed


def _working(home: Home, account_id: int, mailbox: Mailbox):
    spec = home.app.accounts.get(account_id).spec
    return replace(spec, port=mailbox.ports.pop3s, username=mailbox.user)


def test_the_webhook_gets_signed_events_retried_after_a_500(
    tmp_path: Path, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
):
    import time

    from support.webhook_receiver import WebhookReceiver

    key = b"a-webhook-signing-key-of-32-bytes"
    key_file = tmp_path / "webhook.key"
    key_file.write_bytes(key + b"\n")
    receiver = WebhookReceiver(key)
    toml = (
        "[notify]\nafter_failures = 1\nmailbox = false\n"
        f'webhook = "{receiver.url}"\nwebhook_secret_file = "{key_file}"\n'
    )
    home = Home.create(tmp_path / "home", toml)
    try:
        account = home.add(mailbox, Protocol.POP3, password="not-the-password-5")
        assert home.poll(account).result == "error"
        sender = home.app.notice_sender
        receiver.fail_next = 1
        assert sender.send_due() == 0  # the receiver answered 500: retried later
        assert sender.send_due() == 0  # not yet due again
        assert sender.send_due(now=time.time() + 3600) == 1
        first, again = receiver.received
        assert first.delivery == again.delivery and again.signed
        assert again.event == "account.failing" and again.body["account"]["id"] == account.id
        assert again.body["incident"]["kind"] == "failing"
        assert b"not-the-password-5" not in again.raw
        assert notices_in(home.maildir_for()) == []  # mailbox notices are off

        # killed after the receiver's 2xx, before the mark: posted again with the same id,
        # which the receiver uses to drop the repeat
        fixed = home.app.accounts.edit(account.id, account.spec, mailbox.password)
        assert home.poll(fixed).result == "ok"
        store = sender.store
        marked = store.sent

        def die_once(*args: object) -> None:
            monkeypatch.setattr(store, "sent", marked)
            raise Killed

        monkeypatch.setattr(store, "sent", die_once)
        with pytest.raises(Killed):
            sender.send_due()
        assert sender.send_due() == 1
        recovered = [r for r in receiver.received if r.event == "account.recovered"]
        assert len(recovered) == 2 and len({r.delivery for r in recovered}) == 1
        assert all(r.signed for r in receiver.received)
        assert sender.send_due(now=time.time() + 7200) == 0  # nothing left
    finally:
        receiver.close()
        home.app.db.dispose()


def test_a_certificate_about_to_expire_is_told_once(tmp_path: Path):
    with DovecotServer(tmp_path / "short-cert", cert_days=3) as server:
        box = server.new_mailbox()
        box.deliver(b"Subject: still flowing\n\nmail\n")
        home = Home.create(tmp_path / "home")
        try:
            account = home.add(box, Protocol.IMAP)  # TLS, verified against the test CA
            assert home.poll(account).fetched == 1  # mail still flows
            assert home.app.notice_sender.send_due() == 1
            (notice,) = notices_in(home.maildir_for())
            assert b"certificate expires soon" in notice and b"expires 20" in notice
            assert home.poll(account).result == "ok"
            assert home.app.notice_sender.send_due() == 0  # once
            (incident,) = home.app.incidents.listed(None)
            assert incident.kind == "cert_expiring" and incident.open
        finally:
            home.app.db.dispose()


def test_a_certificate_with_time_left_tells_no_one(home: Home, mailbox: Mailbox):
    account = home.add(mailbox, Protocol.IMAP)  # the session Dovecot's: 30 days left
    assert home.poll(account).result == "ok"
    assert home.app.notice_sender.send_due() == 0 and home.app.incidents.listed(None) == []


def test_notices_as_email_through_a_relay(tmp_path: Path, mailbox: Mailbox):
    from support.smtp_server import Handler, SmtpTestServer

    handler = Handler()
    with SmtpTestServer(handler) as relay:
        toml = f'[notify]\nafter_failures = 1\nsmtp = "{relay.address}"\n'
        home = Home.create(tmp_path / "home", toml)
        try:
            account = home.add(mailbox, Protocol.POP3, password="not-the-password-6")
            assert home.poll(account).result == "error"
            assert home.app.notice_sender.send_due() == 1
        finally:
            home.app.db.dispose()
    (sent,) = handler.messages
    assert sent.rcpt_tos == ["owner@local.test"] and sent.mail_from == "<>"
    assert b"X-Mailhaul-Notice: account.failing" in sent.data
    assert notices_in(home.maildir_for()) == []  # not delivered locally as well


def test_a_person_who_turned_notices_off_is_not_told(tmp_path: Path, mailbox: Mailbox):
    from fastapi.testclient import TestClient

    from mailhaul.web.app import create_app
    from support.api import Api, add_person, make_app

    app = make_app(tmp_path / "home", overrides={"notify.after_failures": 1, "notify.admins": True})
    try:
        owner = add_person(app, "owner", "owner@a.test", Role.USER)
        add_person(app, "boss", "boss@a.test", Role.DOMAIN_ADMIN, ("a.test",))
        client = TestClient(create_app(app), base_url="https://testserver")
        changed = Api(client, owner.key).patch("/me", {"notices": "off"})
        assert changed.status_code == 200 and changed.json()["notices"] == "off"
        assert Api(client, owner.key).patch("/me", {"notices": "loud"}).status_code == 422
        spec = owners_pop3s(mailbox)
        account = app.accounts.add(spec, "not-the-password-7")
        assert app.poller.poll(account.id).result == "error"
        (incident,) = app.incidents.listed(None)
        told = [n["recipient"] for n in app.incidents.notices_of(incident.id)]
        assert told == ["boss@a.test"]  # the domain's admin (a copy), not the owner
    finally:
        app.db.dispose()
