"""Switching from fetchmail/getmail keeps their already-delivered mail from coming again,
and export -> import moves accounts and state to a fresh home (real Dovecot)."""

from __future__ import annotations

import poplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailhaul.bootstrap import App
from mailhaul.domain.options import Protocol
from mailhaul.importers.fetchmailrc import parse_fetchmailrc
from mailhaul.importers.getmailrc import parse_getmailrc
from mailhaul.importers.state import oldmail_filename
from mailhaul.services.export import export_data, parse_export, state_reader
from mailhaul.services.import_state import FetchidsState, OldmailState
from mailhaul.services.importing import ImportDefaults, ImportService
from support.dovecot import Mailbox
from support.mailhaul_home import OWNER, Home


def message(n: int) -> bytes:
    return b"From: a@example.net\nMessage-ID: <imp%d@example.net>\nSubject: m%d\n\nbody %d\n" % (
        n,
        n,
        n,
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


def defaults(app: App) -> ImportDefaults:
    return ImportDefaults(deliver_to=OWNER, home=str(app.settings.home))


def pop3_uidls(mailbox: Mailbox) -> list[str]:
    """The UIDLs Dovecot reports, in message order (what fetchmail would have stored)."""
    conn = poplib.POP3_SSL(
        "localhost", mailbox.ports.pop3s, context=mailbox.server.ssl_context(), timeout=10
    )
    try:
        conn.user(mailbox.user)
        conn.pass_(mailbox.password)
        _resp, lines, _octets = conn.uidl()
        return [line.split()[1].decode() for line in lines]
    finally:
        conn.quit()


def only_account(home: Home):
    [account] = home.app.accounts.list_all()
    return account


def test_fetchids_then_poll_delivers_only_what_fetchmail_had_not(home: Home, mailbox: Mailbox):
    for n in range(4):
        mailbox.deliver(message(n))
    uidls = pop3_uidls(mailbox)
    assert all(len(u) == 16 and u == u.lower() for u in uidls)  # %08Xu%08Xv as Dovecot has it
    rc = (
        f"poll localhost proto pop3 port {mailbox.ports.pop3s}\n"
        f'  user "{mailbox.user}" there with password "{mailbox.password}" is {OWNER} here\n'
        f"  ssl sslcertfile {mailbox.server.ca_path} keep\n"
    )
    fetchids = "".join(f"{mailbox.user}@localhost {uid}\n" for uid in uidls[:2])
    ids = FetchidsState(fetchids, ".fetchids")
    summary = ImportService(home.app.accounts).apply(
        "fetchmailrc", parse_fetchmailrc(rc, "rc"), defaults(home.app), state_for=ids
    )
    assert summary.count("created") == 1 and summary.outcomes[0].seen == 2
    assert ids.unused() == []
    account = only_account(home)
    result = home.poll(account)
    assert result.result == "ok", home.log(account)
    assert home.delivered() == [message(2), message(3)]
    assert len(mailbox.list_messages()) == 4  # keep
    assert home.poll(account).fetched == 0


def test_getmail_oldmail_then_poll_delivers_only_what_getmail_had_not(
    home: Home, mailbox: Mailbox, tmp_path: Path
):
    for n in range(3):
        mailbox.deliver(message(n), seen=n == 2)  # getmail ignores \Seen: so must we
    uidvalidity = mailbox.uidvalidity()
    uids = [m.uid for m in mailbox.list_messages()]
    rc = (
        "[retriever]\ntype = SimpleIMAPSSLRetriever\nserver = localhost\n"
        f"port = {mailbox.ports.imaps}\nusername = {mailbox.user}\n"
        f"password = {mailbox.password}\nca_certs = {mailbox.server.ca_path}\n"
        'mailboxes = ("INBOX",)\n'
        "[destination]\ntype = Maildir\npath = /var/mail/someone/\n"
        "[options]\ndelete = false\nread_all = false\n"
    )
    state_dir = tmp_path / "getmail"
    state_dir.mkdir()
    name = oldmail_filename("localhost", mailbox.ports.imaps, mailbox.user, "INBOX")
    now = int(time.time())
    (state_dir / name).write_text(f"{uidvalidity}/{uids[0]}\0{now}\n")
    pop_name = oldmail_filename("localhost", 995, "nobody")
    (state_dir / pop_name).write_text("x\0" + str(now) + "\n")
    seen = OldmailState(state_dir)
    summary = ImportService(home.app.accounts).apply(
        "getmailrc", parse_getmailrc(rc, "getmailrc"), defaults(home.app), state_for=seen
    )
    assert summary.count("created") == 1 and summary.outcomes[0].seen == 1
    assert [n for n in seen.unused() if pop_name in n]  # reported, not silently ignored
    account = only_account(home)
    assert account.spec.protocol is Protocol.IMAP and account.spec.options.fetchall
    result = home.poll(account)
    assert result.result == "ok", home.log(account)
    assert home.delivered() == [message(1), message(2)]


def _comparable(data: dict[str, Any]) -> list[dict[str, Any]]:
    drop = {"id", "last_run_at", "last_result", "password"}
    out = []
    for account in data["accounts"]:
        item = {k: v for k, v in account.items() if k not in drop}
        item["messages"] = [
            {k: v for k, v in m.items() if k != "recorded_at"} for m in item["messages"]
        ]
        out.append(item)
    return out


def test_export_import_moves_accounts_and_state_to_a_fresh_home(
    home: Home, mailbox: Mailbox, tmp_path: Path
):
    mailbox.deliver(message(1))
    mailbox.deliver(message(2))
    account = home.add(mailbox, Protocol.POP3, keep=True)
    assert home.poll(account).fetched == 2
    exported = export_data(home.app.accounts, passphrase="move me")
    assert mailbox.password not in str(exported)

    fresh = Home.create(tmp_path / "fresh")
    try:
        parsed, states = parse_export(exported, "export.json", "move me")
        summary = ImportService(fresh.app.accounts).apply(
            "json", parsed, ImportDefaults(), state_for=state_reader(states)
        )
        assert summary.count("created") == 1
        assert _comparable(export_data(fresh.app.accounts)) == _comparable(exported)
        again = ImportService(fresh.app.accounts).apply(
            "json", parsed, ImportDefaults(), state_for=state_reader(states)
        )
        assert again.count("unchanged") == 1
        mailbox.deliver(message(3))
        moved = only_account(fresh)
        result = fresh.poll(moved)
        assert result.result == "ok", fresh.log(moved)
        assert fresh.delivered() == [message(3)]
    finally:
        fresh.app.db.dispose()
