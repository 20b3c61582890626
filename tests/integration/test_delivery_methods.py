"""The poller delivering over LMTP and through an MDA into a real Dovecot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol
from support.dovecot import DovecotServer, Mailbox
from support.mailhaul_home import Home


def message(n: int) -> bytes:
    return b"From: a@example.net\nMessage-ID: <d%d@example.net>\nSubject: d%d\n\nbody %d\n" % (
        n,
        n,
        n,
    )


def bodies(mailbox: Mailbox) -> list[bytes]:
    """Messages in a Dovecot mailbox, without the headers LMTP delivery added on top."""
    result = []
    for stored in mailbox.list_messages():
        raw = stored.raw.replace(b"\r\n", b"\n")
        result.append(raw[raw.index(b"From: a@example.net") :])
    return sorted(result)


@pytest.fixture
def lmtp_home(tmp_path: Path, dovecot: DovecotServer) -> Iterator[Home]:
    toml = f'[delivery]\nmethod = "lmtp"\nlmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
    home = Home.create(tmp_path / "home", toml)
    yield home
    home.app.db.dispose()


@pytest.mark.parametrize("protocol", [Protocol.POP3, Protocol.IMAP])
def test_lmtp_delivery_lands_in_the_local_mailbox_and_source_is_emptied(
    lmtp_home: Home, dovecot: DovecotServer, protocol: Protocol
):
    source, local = dovecot.new_mailbox(), dovecot.new_mailbox()
    for n in range(3):
        source.deliver(message(n))
    account = lmtp_home.add(source, protocol, deliver_to=local.user)
    summary = lmtp_home.poll(account)
    assert (summary.result, summary.fetched) == ("ok", 3), lmtp_home.log(account)
    assert bodies(local) == sorted(message(n) for n in range(3))
    assert source.list_messages() == []
    delivered = local.list_messages()[0].raw
    assert b"Received: from localhost by mailhaul" in delivered


def test_lmtp_unknown_destination_fetches_and_deletes_nothing(
    lmtp_home: Home, dovecot: DovecotServer
):
    source = dovecot.new_mailbox()
    source.deliver(message(1))
    account = lmtp_home.add(source, Protocol.IMAP, deliver_to="nobody-here@example.test")
    summary = lmtp_home.poll(account)
    assert summary.result == "error"
    assert lmtp_home.app.accounts.get(account.id).state == "destination missing"
    assert len(source.list_messages()) == 1
    assert "nobody-here@example.test" in lmtp_home.log(account)


def test_per_domain_override_routes_one_domain_to_lmtp(tmp_path: Path, dovecot: DovecotServer):
    toml = (
        '[delivery]\nmethod = "maildir"\n'
        f'[delivery.domains."example.test"]\nmethod = "lmtp"\n'
        f'lmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
    )
    home = Home.create(tmp_path / "home", toml)
    source, local = dovecot.new_mailbox(), dovecot.new_mailbox()
    source.deliver(message(1))
    via_lmtp = home.add(source, Protocol.IMAP, keep=True, deliver_to=local.user)
    to_maildir = home.add(source, Protocol.IMAP, keep=True, fetchall=True)  # owner@local.test
    assert home.poll(via_lmtp).fetched == 1
    assert home.poll(to_maildir).fetched == 1
    assert bodies(local) == [message(1)]
    assert home.delivered() == [message(1)]
    home.app.db.dispose()
