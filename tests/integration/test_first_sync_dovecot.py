"""The first sync against a real Dovecot: ``new_only`` leaves what a folder holds when it is
first listed (and takes what arrives after), ``since`` leaves mail dated before a day (IMAP
by the internal date, POP3 by the Date header); nothing left alone is ever deleted, even
without keep, and nothing is delivered twice."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol
from support.dovecot import Mailbox
from support.mailhaul_home import Home

BOTH = [Protocol.POP3, Protocol.IMAP]
OLD_DAY = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
NEW_DAY = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


def dated(subject: str, when: datetime.datetime) -> bytes:
    stamp = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return f"Date: {stamp}\nSubject: {subject}\n\nbody\n".encode()


def deliver_on(mailbox: Mailbox, subject: str, when: datetime.datetime) -> None:
    """A message with this Date header, its file (Dovecot's internal date) from that time."""
    before = {p for sub in ("new", "cur") for p in (mailbox.maildir() / sub).iterdir()}
    mailbox.deliver(dated(subject, when))
    after = {p for sub in ("new", "cur") for p in (mailbox.maildir() / sub).iterdir()}
    for path in after - before:
        os.utime(path, (when.timestamp(), when.timestamp()))


def subjects(home: Home) -> list[str]:
    found = []
    for raw in home.delivered():
        for line in raw.decode().splitlines():
            if line.startswith("Subject: "):
                found.append(line.removeprefix("Subject: "))
    return sorted(found)


@pytest.mark.parametrize("protocol", BOTH)
def test_new_only_takes_only_what_arrives_after_the_first_listing(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    mailbox.deliver(b"Subject: old 1\n\nbody\n")
    mailbox.deliver(b"Subject: old 2\n\nbody\n")
    account = home.add(mailbox, protocol, new_only=True)  # keep off: deletes what it takes
    summary = home.poll(account)
    assert (summary.fetched, summary.deleted) == (0, 0), home.log(account)
    assert "the 2 message(s) already here stay on the server" in home.log(account)
    mailbox.deliver(b"Subject: new 1\n\nbody\n")
    assert home.poll(account).fetched == 1
    assert home.poll(account).fetched == 0
    assert subjects(home) == ["new 1"]
    left = sorted(m.raw for m in mailbox.list_messages())
    assert len(left) == 2 and all(b"Subject: old" in raw for raw in left)  # never deleted
    # positive control: the same mailbox without new_only takes the old mail
    other = home.add(mailbox, protocol, keep=True)
    assert home.poll(other).fetched == 2


@pytest.mark.parametrize("protocol", BOTH)
def test_since_leaves_older_mail_on_the_server(home: Home, mailbox: Mailbox, protocol: Protocol):
    deliver_on(mailbox, "from 2025", OLD_DAY)
    deliver_on(mailbox, "from 2026", NEW_DAY)
    mailbox.deliver(b"Subject: no date\n\nbody\n")  # POP3: no Date header, so fetched
    account = home.add(mailbox, protocol, since=datetime.date(2026, 1, 1))
    summary = home.poll(account)
    assert summary.fetched == 2, home.log(account)
    assert "1 message(s) dated before 2026-01-01 stay on the server" in home.log(account)
    assert subjects(home) == ["from 2026", "no date"]
    assert home.poll(account).fetched == 0
    assert "dated before" not in home.log(account)  # each looked at once
    (left,) = mailbox.list_messages()
    assert b"Subject: from 2025" in left.raw


@pytest.mark.parametrize("protocol", BOTH)
def test_new_only_survives_the_server_renumbering_the_folder(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    """After a UIDVALIDITY reset (IMAP) or with new UIDLs (POP3: Dovecot's carry the
    UIDVALIDITY), what the first sync left is not taken for new mail: mail dated before the
    first sync stays on the server; mail delivered since is recognised; new mail comes."""
    deliver_on(mailbox, "old 1", OLD_DAY)
    deliver_on(mailbox, "old 2", NEW_DAY)
    account = home.add(mailbox, protocol, new_only=True, keep=True)
    assert home.poll(account).fetched == 0
    mailbox.deliver(b"Subject: new 1\n\nbody\n")
    assert home.poll(account).fetched == 1
    mailbox.reset_uidvalidity()
    mailbox.deliver(b"Subject: new 2\n\nbody\n")
    summary = home.poll(account)
    assert summary.fetched == 1, home.log(account)
    assert "2 message(s) dated before the first sync" in home.log(account)
    assert subjects(home) == ["new 1", "new 2"]
    assert home.poll(account).fetched == 0
    assert len(mailbox.list_messages()) == 4  # kept: nothing left the server
