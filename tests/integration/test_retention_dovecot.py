"""How long mail stays on the server and how much a run takes, against a real Dovecot:
``delete_after_days`` with the plan's clock moved (not a sleep), and per-run limits that end
a run cleanly and make the account due again at once, delivering each message once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol
from mailhaul.domain.validation import FieldError
from support.dovecot import Mailbox
from support.mailhaul_home import Home

BOTH = [Protocol.POP3, Protocol.IMAP]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


def message(n: int) -> bytes:
    return f"Subject: message {n}\n\nbody {n}\n".encode()


@pytest.mark.parametrize("protocol", BOTH)
def test_kept_mail_is_deleted_on_the_server_after_its_days(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    for n in range(3):
        mailbox.deliver(message(n))
    account = home.add(mailbox, protocol, keep=True, delete_after_days=30)
    assert home.poll(account).fetched == 3
    assert len(mailbox.list_messages()) == 3  # kept
    home.move_clock(29.9)
    summary = home.poll(account)
    assert (summary.fetched, summary.deleted) == (0, 0), home.log(account)
    assert len(mailbox.list_messages()) == 3
    mailbox.deliver(message(3))  # arrives on day 29.9: its own 30 days start now
    assert home.poll(account).fetched == 1
    home.move_clock(30.0)
    summary = home.poll(account)
    assert (summary.fetched, summary.deleted) == (0, 3), home.log(account)
    assert "3 kept for 30 day(s) since their delivery" in home.log(account)
    assert [b"Subject: message 3" in m.raw for m in mailbox.list_messages()] == [True]
    assert len(home.delivered()) == 4  # each delivered once, none lost


def test_delete_after_goes_with_keep(home: Home, mailbox: Mailbox):
    with pytest.raises(FieldError) as caught:
        home.add(mailbox, Protocol.IMAP, delete_after_days=30)
    assert caught.value.field == "delete_after"
    assert "goes with keep" in caught.value.message


@pytest.mark.parametrize("protocol", BOTH)
def test_a_per_run_limit_ends_the_run_and_the_rest_comes_at_once(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    for n in range(5):
        mailbox.deliver(message(n))
    account = home.add(mailbox, protocol, max_messages_per_run=2)
    fetched = []
    for _ in range(4):
        before = time.time()
        summary = home.poll(account)
        fetched.append(summary.fetched)
        due = home.app.accounts.get(account.id).next_poll_at
        assert due is not None
        if summary.fetched == 2:  # stopped at the limit: due again at once
            assert due <= time.time() and due >= before - 1, home.log(account)
            assert "the per-run limit is reached" in home.log(account)
        else:  # finished: an interval later
            assert due > time.time() + account.spec.interval / 2
    assert fetched == [2, 2, 1, 0]
    assert sorted(home.delivered()) == sorted(message(n) for n in range(5))
    assert mailbox.list_messages() == []


def test_a_byte_limit_counts_what_was_fetched_and_one_message_always_fits(
    home: Home, mailbox: Mailbox
):
    big = b"Subject: big\n\n" + b"x" * 3000 + b"\n"
    mailbox.deliver(big)
    mailbox.deliver(message(1))
    account = home.add(mailbox, Protocol.IMAP, max_bytes_per_run=1024)
    assert home.poll(account).fetched == 1  # the big one, alone, over the limit
    assert home.poll(account).fetched == 1
    assert len(home.delivered()) == 2
