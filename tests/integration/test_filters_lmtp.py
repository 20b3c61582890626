"""The filter stage into a real Dovecot over LMTP: spam filed into Junk through
``local+Junk@domain`` (Dovecot's lmtp_save_to_detail_mailbox), and the user's own Sieve
script (Pigeonhole) run on fetched mail, telling it apart by mailhaul's headers."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.filtering import FilterOptions, SpamAction
from mailhaul.domain.options import Protocol
from support.dovecot import DovecotServer
from support.mailhaul_home import Home
from support.scanners import RspamdServer, ham, spam


def lmtp_toml(dovecot: DovecotServer, extra: str = "") -> str:
    return (
        f'[delivery]\nmethod = "lmtp"\nlmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
        f'lmtp_folder_detail = "+"\n{extra}'
    )


@pytest.fixture
def home(tmp_path: Path, dovecot: DovecotServer, rspamd: RspamdServer) -> Iterator[Home]:
    home = Home.create(
        tmp_path / "home", lmtp_toml(dovecot, f'[filter]\nrspamd = "{rspamd.url}"\n')
    )
    yield home
    home.app.db.dispose()


def subjects(dovecot: DovecotServer, user: str, folder: str) -> list[bytes]:
    found = []
    for message in dovecot.list_messages(user, folder):
        for line in message.raw.splitlines():
            if line.startswith(b"Subject: "):
                found.append(line.removeprefix(b"Subject: "))
    return sorted(found)


@pytest.mark.parametrize("protocol", [Protocol.POP3, Protocol.IMAP])
def test_junk_goes_to_the_junk_folder_through_lmtp_detail(
    home: Home, dovecot: DovecotServer, protocol: Protocol
):
    source, local = dovecot.new_mailbox(), dovecot.new_mailbox()
    source.deliver(spam(1).replace(b"\r\n", b"\n"))
    source.deliver(ham(2).replace(b"\r\n", b"\n"))
    account = home.add(
        source, protocol, deliver_to=local.user, filters=FilterOptions(SpamAction.JUNK)
    )
    summary = home.poll(account)
    assert (summary.result, summary.fetched) == ("ok", 2), home.log(account)
    assert subjects(dovecot, local.user, "Junk") == [b"Lunch on Friday 1"]
    assert subjects(dovecot, local.user, "INBOX") == [b"Lunch on Friday 2"]
    (junk,) = dovecot.list_messages(local.user, "Junk")
    assert b"X-Spam-Flag: YES" in junk.raw
    assert source.list_messages() == []


def test_the_users_sieve_script_runs_and_tells_fetched_mail_apart(
    home: Home, dovecot: DovecotServer
):
    source, local = dovecot.new_mailbox(), dovecot.new_mailbox()
    dovecot.set_sieve(
        local.user,
        'require ["fileinto", "mailbox"];\n'
        'if header :contains "X-Mailhaul-Account" "imap" { fileinto :create "Fetched"; }\n',
    )
    source.deliver(ham(1).replace(b"\r\n", b"\n"))
    account = home.add(source, Protocol.IMAP, deliver_to=local.user)
    assert home.poll(account).fetched == 1, home.log(account)
    assert subjects(dovecot, local.user, "Fetched") == [b"Lunch on Friday 1"]
    assert dovecot.list_messages(local.user, "INBOX") == []
    # positive control: the same script leaves mail that did not come through mailhaul,
    # handed over the same LMTP, in the INBOX
    with smtplib.LMTP("127.0.0.1", dovecot.ports.lmtp) as lmtp:
        lmtp.sendmail("alice@example.org", [local.user], ham(2))
    assert subjects(dovecot, local.user, "INBOX") == [b"Lunch on Friday 2"]
