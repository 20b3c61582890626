"""Fetching from real GNU Mailutils servers (imap4d, pop3d), which keep mail in mbox files.

Mailutils serves its bookkeeping header fields as part of each message (``X-IMAPbase`` on a
folder's first message, ``X-UID``, ``X-UIDL``, ``Status``) and rewrites them between sessions.
What is compared: each delivered message, with LF line ends and without mailhaul's Received
header and without those fields (`without_bookkeeping`), must equal the message as it was put
into the mbox, byte for byte; and the delivered list must hold each message exactly once.
"""

from __future__ import annotations

import poplib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from support.mailhaul_home import OWNER, Home
from support.mailutils import (
    MailutilsError,
    MailutilsMailbox,
    MailutilsServer,
    binaries_missing,
    without_bookkeeping,
)

BOTH = [Protocol.POP3, Protocol.IMAP]
IMAP_FOLDERS = ("INBOX", "Archive", "Lists/python")


def message(n: int, folder: str = "INBOX") -> bytes:
    return (
        b"From: sender@example.net\nTo: someone@example.test\n"
        b"Message-ID: <mu%d.%s@example.net>\nDate: Thu, 3 Dec 2026 08:00:%02d +0000\n"
        b"Subject: message %d in %s\n\nbody %d\n\n  indented, and a last line without spaces\n"
        % (n, folder.encode(), n, n, folder.encode(), n)
    )


@pytest.fixture(scope="module")
def mailutils(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailutilsServer]:
    """Private imap4d and pop3d for this module (skipped only when they are not installed)."""
    missing = binaries_missing()
    if missing:
        pytest.skip(f"GNU Mailutils servers not installed ({', '.join(map(str, missing))})")
    server = MailutilsServer(tmp_path_factory.mktemp("mailutils"))
    try:
        server.start()
    except MailutilsError as exc:
        server.close()
        pytest.fail(f"cannot start the test Mailutils servers: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def mailbox(mailutils: MailutilsServer) -> MailutilsMailbox:
    return mailutils.new_mailbox()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


def add_account(
    home: Home,
    mailbox: MailutilsMailbox,
    protocol: Protocol,
    security: Security = Security.SSL,
    **options: object,
) -> Account:
    ports = mailbox.ports
    if protocol is Protocol.POP3:
        port = ports.pop3s if security is Security.SSL else ports.pop3
    else:
        port = ports.imaps if security is Security.SSL else ports.imap
    spec = AccountSpec(
        owner=OWNER,
        protocol=protocol,
        host="localhost",
        port=port,
        security=security,
        username=mailbox.user,
        ca_file=str(mailbox.server.ca_path),
        options=RetrievalOptions(**options),  # type: ignore[arg-type]
    )
    return home.app.accounts.add(spec, mailbox.password)


def delivered(home: Home) -> list[bytes]:
    """What mailhaul delivered, without the server's bookkeeping fields, sorted."""
    return sorted(without_bookkeeping(raw) for raw in home.delivered(everywhere=True))


def delivered_twice(home: Home) -> list[str]:
    """The Subject of each message mailhaul delivered more than once."""
    copies = Counter(delivered(home))
    return sorted(_subject(raw) for raw, count in copies.items() if count > 1)


def _subject(raw: bytes) -> str:
    match = re.search(rb"^Subject: (.*)$", raw, re.MULTILINE)
    return match.group(1).decode() if match else repr(raw[:60])


def fill(mailbox: MailutilsMailbox, folders: tuple[str, ...], numbers: range) -> list[bytes]:
    """Put messages into each folder and let a mail client open them, so imap4d writes its
    bookkeeping fields into the mbox files; returns the messages, sorted."""
    for folder in folders:
        for n in numbers:
            mailbox.deliver(message(n, folder), folder)
        mailbox.look_at(folder)
    return sorted(message(n, folder) for folder in folders for n in numbers)


def folders_for(protocol: Protocol) -> tuple[str, ...]:
    return IMAP_FOLDERS if protocol is Protocol.IMAP else ("INBOX",)


def test_the_server_serves_its_bookkeeping_fields_with_the_message(mailbox: MailutilsMailbox):
    mailbox.deliver(message(1))
    mailbox.deliver(message(2))
    assert mailbox.fetch_all() == [message(n).replace(b"\n", b"\r\n") for n in (1, 2)]
    mailbox.look_at()
    first, second = mailbox.fetch_all()
    assert b"\r\nX-IMAPbase: " in first and b"\r\nX-UID: 1\r\n" in first
    assert b"X-IMAPbase" not in second and b"\r\nX-UID: 2\r\n" in second
    assert [without_bookkeeping(m) for m in (first, second)] == [message(1), message(2)]


@pytest.mark.parametrize("protocol", BOTH)
@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_every_message_is_delivered_once_byte_exact_then_deleted(
    home: Home, mailbox: MailutilsMailbox, protocol: Protocol, security: Security
):
    folders = folders_for(protocol)
    originals = fill(mailbox, folders, range(3))
    account = add_account(home, mailbox, protocol, security, folders=folders)
    summary = home.poll(account)
    assert summary.result == "ok", home.log(account)
    assert (summary.fetched, summary.deleted) == (len(originals), len(originals))
    assert delivered(home) == originals
    assert all(mailbox.fetch_all(folder) == [] for folder in folders)
    assert home.poll(account).fetched == 0
    assert delivered(home) == originals


@pytest.mark.parametrize("protocol", BOTH)
def test_keep_delivers_each_message_once_while_the_server_rewrites_its_mbox(
    home: Home, mailbox: MailutilsMailbox, protocol: Protocol
):
    folders = folders_for(protocol)
    originals = fill(mailbox, folders, range(3))
    account = add_account(home, mailbox, protocol, keep=True, folders=folders)
    assert home.poll(account).fetched == len(originals), home.log(account)
    originals += fill(mailbox, folders, range(3, 4))  # new mail; the mbox is rewritten
    assert home.poll(account).fetched == len(folders), home.log(account)
    for folder in folders:
        mailbox.look_at(folder)  # another client: the mbox is rewritten again
    assert home.poll(account).fetched == 0, home.log(account)
    assert delivered(home) == sorted(originals)
    on_server = [m for folder in folders for m in mailbox.fetch_all(folder)]
    assert sorted(without_bookkeeping(m) for m in on_server) == sorted(originals)


@pytest.mark.parametrize("protocol", BOTH)
def test_a_folder_emptied_and_refilled_under_a_new_uidvalidity_delivers_only_the_new_mail(
    home: Home, mailbox: MailutilsMailbox, protocol: Protocol
):
    folders = folders_for(protocol)
    originals = fill(mailbox, folders, range(3))
    account = add_account(home, mailbox, protocol, keep=True, folders=folders)
    assert home.poll(account).fetched == len(originals), home.log(account)
    before = {folder: mailbox.empty(folder) for folder in folders}  # another client
    originals += fill(mailbox, folders, range(4))  # the same three again, and one new
    assert all(mailbox.uidvalidity(folder) != before[folder] for folder in folders)
    summary = home.poll(account)
    assert summary.result == "ok", home.log(account)
    assert delivered_twice(home) == [], home.log(account)
    assert delivered(home) == sorted(set(originals))
    assert summary.fetched == len(folders)


def test_pop3_mailbox_in_use_is_retried_later_and_nothing_is_lost(
    home: Home, mailbox: MailutilsMailbox, mailutils: MailutilsServer
):
    originals = fill(mailbox, ("INBOX",), range(2))
    account = add_account(home, mailbox, Protocol.POP3)
    other = poplib.POP3_SSL("localhost", mailbox.ports.pop3s, context=mailutils.ssl_context())
    try:
        other.user(mailbox.user)
        other.pass_(mailbox.password)  # the user's phone holds the maildrop
        summary = home.poll(account)
        assert (summary.result, summary.fetched) == ("error", 0)
        assert "IN-USE" in home.log(account)
    finally:
        other.quit()
    assert delivered(home) == []
    assert len(mailbox.fetch_all()) == 2  # nothing deleted
    summary = home.poll(account)
    assert (summary.result, summary.fetched, summary.deleted) == ("ok", 2, 2), home.log(account)
    assert delivered(home) == originals
