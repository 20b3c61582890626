"""Every row of the retrieval semantics, both protocols, against a real Dovecot."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol, Security
from support.dovecot import Mailbox
from support.mailhaul_home import Home

BOTH = [Protocol.POP3, Protocol.IMAP]


def message(n: int, body: bytes = b"") -> bytes:
    return (
        b"From: sender@example.net\nTo: someone@example.test\n"
        b"Message-ID: <m%d@example.net>\nSubject: message %d\n\nbody %d\n%s" % (n, n, n, body)
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


@pytest.mark.parametrize("protocol", BOTH)
@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS, Security.NONE])
def test_default_options_deliver_byte_exact_then_delete(
    home: Home, mailbox: Mailbox, protocol: Protocol, security: Security
):
    for n in range(3):
        mailbox.deliver(message(n))
    account = home.add(mailbox, protocol, security)
    summary = home.poll(account)
    assert summary.result == "ok", home.log(account)
    assert (summary.fetched, summary.deleted) == (3, 3)
    assert home.delivered() == sorted(message(n) for n in range(3))
    assert mailbox.list_messages() == []
    if security is Security.NONE:
        assert re.search(r"password is sent .*in clear", home.log(account))


@pytest.mark.parametrize("protocol", BOTH)
def test_keep_delivers_each_message_once_and_leaves_it(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    mailbox.deliver(message(1))
    account = home.add(mailbox, protocol, keep=True)
    assert home.poll(account).fetched == 1
    mailbox.deliver(message(2))
    assert home.poll(account).fetched == 1
    assert home.poll(account).fetched == 0
    assert home.delivered() == [message(1), message(2)]
    on_server = mailbox.list_messages()
    assert len(on_server) == 2
    if protocol is Protocol.IMAP:
        assert all(m.seen for m in on_server)


@pytest.mark.parametrize("protocol", BOTH)
def test_keep_with_fetchall_never_redelivers(home: Home, mailbox: Mailbox, protocol: Protocol):
    mailbox.deliver(message(1), seen=True)
    mailbox.deliver(message(2))
    account = home.add(mailbox, protocol, keep=True, fetchall=True)
    for _ in range(3):
        assert home.poll(account).result == "ok"
    assert home.delivered() == [message(1), message(2)]
    assert len(mailbox.list_messages()) == 2


def test_imap_seen_messages_are_old_unless_fetchall(home: Home, mailbox: Mailbox):
    mailbox.deliver(message(1), seen=True)
    mailbox.deliver(message(2))
    account = home.add(mailbox, Protocol.IMAP)
    assert home.poll(account).fetched == 1
    assert home.delivered() == [message(2)]
    assert [m.raw.replace(b"\r\n", b"\n") for m in mailbox.list_messages()] == [message(1)]
    fetchall = home.add(mailbox, Protocol.IMAP, fetchall=True)
    assert home.poll(fetchall).fetched == 1
    assert home.delivered() == [message(1), message(2)]


def test_imap_folder_that_has_not_changed_is_checked_with_one_status(home: Home, mailbox: Mailbox):
    for n in range(3):
        mailbox.deliver(message(n))
    account = home.add(mailbox, Protocol.IMAP, keep=True)
    assert home.poll(account).fetched == 3
    assert home.poll(account).fetched == 0  # a full listing that finds nothing to do
    assert "3 message(s) on the server, 0 new" in home.log(account)
    assert home.poll(account).fetched == 0
    assert "INBOX: unchanged since it was last listed (3 message(s), 0 unread)" in home.log(account)
    mailbox.deliver(message(9))  # a new UID: STATUS differs, the folder is listed again
    assert home.poll(account).fetched == 1
    assert home.delivered() == sorted([*(message(n) for n in range(3)), message(9)])


def test_a_quiet_folder_is_listed_again_when_another_client_or_the_options_change_it(
    home: Home, mailbox: Mailbox
):
    mailbox.deliver(message(1), seen=True)  # old: left alone without fetchall
    mailbox.deliver(message(2))
    account = home.add(mailbox, Protocol.IMAP, keep=True)
    assert home.poll(account).fetched == 1
    home.poll(account)
    home.poll(account)
    assert "unchanged since it was last listed (2 message(s), 0 unread)" in home.log(account)
    with mailbox.imap() as other:  # another mail client deletes the fetched message
        other.select("INBOX")
        uid = str(mailbox.list_messages()[1].uid)
        other.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
        other.expunge()
    assert home.poll(account).result == "ok"
    assert "1 message(s) on the server" in home.log(account)
    home.poll(account)
    assert "unchanged since it was last listed (1 message(s), 0 unread)" in home.log(account)
    spec = home.app.accounts.get(account.id).spec
    options = dataclasses.replace(spec.options, fetchall=True)
    home.app.accounts.edit(account.id, dataclasses.replace(spec, options=options))
    assert home.poll(account).fetched == 1  # new options: listed again, the old one fetched
    assert home.delivered() == [message(1), message(2)]


def test_imap_flush_deletes_old_mail_before_fetching(home: Home, mailbox: Mailbox):
    mailbox.deliver(message(1), seen=True)
    mailbox.deliver(message(2))
    account = home.add(mailbox, Protocol.IMAP, keep=True, flush=True)
    summary = home.poll(account)
    assert (summary.fetched, summary.deleted) == (1, 1)
    assert home.delivered() == [message(2)]
    assert [m.raw.replace(b"\r\n", b"\n") for m in mailbox.list_messages()] == [message(2)]


def test_pop3_flush_deletes_what_an_earlier_run_kept(home: Home, mailbox: Mailbox):
    mailbox.deliver(message(1))
    account = home.add(mailbox, Protocol.POP3, keep=True, flush=True)
    home.poll(account)
    assert len(mailbox.list_messages()) == 1
    mailbox.deliver(message(2))
    summary = home.poll(account)
    assert (summary.fetched, summary.deleted) == (1, 1)
    assert home.delivered() == [message(1), message(2)]
    assert [m.raw.replace(b"\r\n", b"\n") for m in mailbox.list_messages()] == [message(2)]


@pytest.mark.parametrize("protocol", BOTH)
def test_awkward_messages_arrive_byte_exact(home: Home, mailbox: Mailbox, protocol: Protocol):
    eight_bit = bytes(b for b in range(1, 256) if b not in (10, 13))
    awkward = [
        message(1, b"x" * 5000 + b"\n" + b"y" * 70000 + b"\n"),  # lines over 2,048 bytes
        message(2, b".\n..\n.leading dot\n.\n"),  # lone "." lines and dot-stuffing
        message(3, eight_bit + b"\n" + "Grüße, ☃".encode() + b"\n"),  # 8-bit and binary
        message(4, b"no trailing newline"),
    ]
    for raw in awkward:
        mailbox.deliver(raw)
    account = home.add(mailbox, protocol)
    assert home.poll(account).fetched == 4, home.log(account)
    assert home.delivered() == sorted(awkward)


@pytest.mark.parametrize("protocol", BOTH)
def test_message_over_the_size_limit_stays_and_is_named(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    mailbox.deliver(message(1, b"z" * 20000))
    mailbox.deliver(message(2))
    account = home.add(mailbox, protocol, max_size=10000)
    summary = home.poll(account)
    assert (summary.result, summary.fetched, summary.skipped) == ("ok", 1, 1)
    assert home.delivered() == [message(2)]
    assert len(mailbox.list_messages()) == 1
    assert "over the size limit" in home.log(account)


def test_imap_uidvalidity_change_does_not_redeliver(home: Home, mailbox: Mailbox):
    for n in range(3):
        mailbox.deliver(message(n))
    account = home.add(mailbox, Protocol.IMAP, keep=True)
    assert home.poll(account).fetched == 3
    old = mailbox.uidvalidity()
    assert mailbox.reset_uidvalidity() != old
    mailbox.deliver(message(7))
    summary = home.poll(account)
    assert summary.fetched == 1, home.log(account)
    assert home.delivered() == sorted([*(message(n) for n in range(3)), message(7)])
    assert "3 of 4 message(s) recognised" in home.log(account)


def test_imap_several_folders(home: Home, mailbox: Mailbox):
    mailbox.deliver(message(1))
    mailbox.deliver(message(2), folder="Lists/Python")
    account = home.add(mailbox, Protocol.IMAP, folders=("INBOX", "Lists/Python"))
    summary = home.poll(account)
    assert summary.fetched == 2, home.log(account)
    assert home.delivered() == [message(1)]  # INBOX is the mailbox itself
    assert home.delivered(folder="Lists/Python") == [message(2)]  # the others are folders


@pytest.mark.parametrize("protocol", BOTH)
def test_certificate_rejected_without_the_ca_and_accepted_with_it(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    mailbox.deliver(message(1))
    untrusted = home.add(mailbox, protocol, ca=False)
    summary = home.poll(untrusted)
    assert summary.result == "error"
    assert "certificate" in (summary.error or "")
    assert "give the CA file that signed it" in (summary.error or "")  # what to do about it
    assert len(mailbox.list_messages()) == 1
    unverified = home.add(mailbox, protocol, ca=False, verify=False, keep=True)
    assert home.poll(unverified).fetched == 1
    assert "verification is switched off" in home.log(unverified)
    trusted = home.add(mailbox, protocol, Security.STARTTLS)
    assert home.poll(trusted).result == "ok"


def test_nothing_listening_is_said_in_plain_words(home: Home, mailbox: Mailbox):
    from dataclasses import replace

    from support.local_servers import free_ports

    (closed,) = free_ports(1)
    account = home.add(mailbox, Protocol.POP3)
    moved = replace(account.spec, port=closed)
    account = home.app.accounts.edit(account.id, moved, mailbox.password)
    summary = home.poll(account)
    assert summary.error == f"nothing is listening on localhost:{closed} (connection refused)"


@pytest.mark.parametrize("protocol", BOTH)
def test_wrong_password_is_a_login_failure_without_the_password(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    account = home.add(mailbox, protocol, password="Wrong-Pa55word")
    summary = home.poll(account)
    assert summary.result == "error"
    assert home.app.accounts.get(account.id).state == "login failed"
    assert "Wrong-Pa55word" not in home.log(account)


def test_pop3_uidl_renumbering_does_not_redeliver_kept_mail(home: Home, mailbox: Mailbox):
    for n in range(3):
        mailbox.deliver(message(n))
    account = home.add(mailbox, Protocol.POP3, keep=True)
    assert home.poll(account).fetched == 3
    mailbox.reset_uidvalidity()  # Dovecot's UIDLs (%08Xu%08Xv) all change with it
    mailbox.deliver(message(7))
    summary = home.poll(account)
    assert summary.fetched == 1, home.log(account)
    assert home.delivered() == sorted([*(message(n) for n in range(3)), message(7)])
    assert "3 of 4 new UIDL(s) recognised as already delivered" in home.log(account)
    assert home.poll(account).fetched == 0
