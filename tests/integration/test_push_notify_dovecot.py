"""Push on more than one folder against the real Dovecot, which offers NOTIFY (RFC 5465):
one connection hears of mail another client appends to a second folder (not the INBOX)
and asks for the account's poll, which delivers it; the interval (an hour) is not due.
The watcher is driven directly: no `serve` (the scheduler's part has its own tests)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailhaul.adapters.db.push_watches import PushWatchStore
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol, Security
from mailhaul.push_setup import build_push_watcher
from mailhaul.services.leases import new_owner
from mailhaul.services.push_status import PushStatus
from support.dovecot import Mailbox
from support.mailhaul_home import Home
from support.waiting import wait_for


def append(mailbox: Mailbox, folder: str, subject: str) -> None:
    """Another client puts a message into ``folder`` (IMAP APPEND)."""
    raw = f"From: a@example.test\r\nSubject: {subject}\r\n\r\n{subject}\r\n".encode()
    with mailbox.imap() as imap:
        status, _ = imap.append(folder, "", None, raw)
        assert status == "OK"


@pytest.mark.parametrize("every", [False, True], ids=["listed", "all-folders"])
def test_mail_in_a_second_folder_is_heard_through_notify_and_delivered(
    tmp_path: Path, mailbox: Mailbox, database_url: str, every: bool
):
    toml = f'[database]\nurl = "{database_url}"\n[poll]\ninterval = 3600\n'
    home = Home.create(tmp_path / "home", toml=toml)
    mailbox.create_folder("Lists")
    folders = ("INBOX",) if every else ("INBOX", "Lists")
    rules = FolderRules(all_folders=True) if every else FolderRules.flat(folders)
    account = home.add(mailbox, Protocol.IMAP, Security.SSL, folders=folders, rules=rules)
    app = home.app

    def words() -> str:
        status = PushStatus(app.db, app.settings.push_enabled, app.settings.limits)
        return status.of(app.accounts.get(account.id)).words()

    def watching() -> bool:
        with app.db.read() as conn:
            row = PushWatchStore().rows(conn, [account.id]).get(account.id)
        return row is not None and row.state == "watching"

    stop, requests = threading.Event(), list[int]()
    watcher = build_push_watcher(app, stop, new_owner(), lambda: requests.append(1))
    watcher.sync_every = 0.5
    watcher.start()
    try:
        assert wait_for(watching)
        shown = "every folder polled" if every else "INBOX, Lists"
        assert words() == f"watching {shown} (NOTIFY)"
        assert requests == []
        append(mailbox, "Lists", "code in Lists 424242")
        assert wait_for(lambda: requests == [1], 10), requests
        assert watcher.counters.watched == 1  # one connection for both folders
    finally:
        stop.set()
        watcher.join(10)
    summary = home.poll(account)  # the poll the watcher asked for
    assert summary.fetched == 1
    delivered = home.delivered(everywhere=True)
    assert [m for m in delivered if b"Subject: code in Lists 424242" in m]
    home.app.db.dispose()
