"""Push on more than one folder of a server without NOTIFY (one IDLE connection per listed
folder, ``push_folders``), within the account's connection cap (``limits.
connections_per_account``, which always leaves one connection for the poll): the watcher is
driven directly (no `serve`, so every connection the scripted server sees is a watch's)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.push_setup import build_push_watcher
from mailhaul.services.leases import new_owner
from mailhaul.services.push import PushWatcher
from mailhaul.services.push_status import PushStatus
from support.databases import upgraded_sqlite
from support.mailhaul_home import Home
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer
from support.waiting import wait_for

FOLDERS = ("INBOX", "Lists", "Work")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLite only: the folders and the cap do not depend on the database (the lease on
    PostgreSQL has test_push_workers_postgres.py and test_push_balance.py)."""
    return upgraded_sqlite(tmp_path)


@dataclass
class Scene:
    """A home whose accounts are on one scripted server, and a watcher running on it."""

    home: Home
    server: ScriptedImapServer
    watcher: PushWatcher
    requests: list[int]

    def add(self, push_folders: tuple[str, ...], host: str = "127.0.0.1") -> Account:
        spec = AccountSpec(
            owner="owner@local.test",
            protocol=Protocol.IMAP,
            host=host,
            port=self.server.port,
            security=Security.NONE,
            username="user",
            options=RetrievalOptions(folders=FOLDERS, push_folders=push_folders),
            interval=3600,
        )
        return self.home.app.accounts.add(spec, "secret")

    def row(self, account: Account) -> WatchRow | None:
        with self.home.app.db.read() as conn:
            return PushWatchStore().rows(conn, [account.id]).get(account.id)

    def watching(self, account: Account) -> bool:
        row = self.row(account)
        return row is not None and row.state == "watching"

    def words(self, account: Account) -> str:
        app = self.home.app
        status = PushStatus(app.db, app.settings.push_enabled, app.settings.limits)
        return status.of(app.accounts.get(account.id)).words()


@contextmanager
def scene(tmp_path: Path, url: str, caps: str) -> Iterator[Scene]:
    toml = (
        f'[database]\nurl = "{url}"\n[poll]\ninterval = 3600\ntimeout = 2\n'
        f'[limits]\nconnections_per_account = "{caps}"\n'
    )
    home = Home.create(tmp_path / "home", toml=toml)
    script = ImapScript(folders={name: Mailbox(7, []) for name in FOLDERS})
    with ScriptedImapServer(script) as server:
        stop = threading.Event()
        requests: list[int] = []
        watcher = build_push_watcher(home.app, stop, new_owner(), lambda: requests.append(1))
        watcher.sync_every = 0.5
        watcher.start()
        try:
            yield Scene(home, server, watcher, requests)
        finally:
            stop.set()
            watcher.join(10)
        assert server.errors == []
    home.app.db.dispose()


def message(uid: int) -> Message:
    return Message(uid, f"Subject: pushed {uid}\r\n\r\nbody\r\n".encode())


def test_each_listed_folder_has_its_idle_and_news_in_lists_asks_for_a_poll(
    tmp_path: Path, sqlite_url: str
):
    with scene(tmp_path, sqlite_url, "*=4") as s:
        account = s.add(("INBOX", "Lists"))
        assert wait_for(lambda: s.server.idlers_on("INBOX") == s.server.idlers_on("Lists") == 1)
        assert s.server.idlers_on("Work") == 0  # polled only: not listed
        assert wait_for(lambda: s.watching(account)), s.row(account)
        assert s.words(account).startswith("watching INBOX, Lists")
        assert s.requests == []
        assert s.server.add_to(message(1), "Lists") == 1  # only the Lists watch hears it
        assert wait_for(lambda: s.requests == [1]), s.requests
        assert "NOTIFY" not in s.server.command_names()  # the server does not offer it


@pytest.mark.parametrize(("cap", "watched"), [(2, 1), (4, 3)])
def test_the_connection_cap_leaves_one_connection_for_the_poll(
    tmp_path: Path, sqlite_url: str, cap: int, watched: int
):
    with scene(tmp_path, sqlite_url, f"*={cap}") as s:
        account = s.add(FOLDERS)
        assert wait_for(lambda: len(s.server.idlers) == watched), len(s.server.idlers)
        assert wait_for(lambda: s.watching(account)), s.row(account)
        shown = ", ".join(FOLDERS[:watched])
        if watched < len(FOLDERS):
            shown += f" ({watched} of 3 listed; the connection cap for 127.0.0.1 is {cap})"
        assert s.words(account) == f"watching {shown}"
        assert s.server.sessions == watched  # no connection beyond the cap was opened


def test_a_cap_of_one_connection_is_polling_only_and_says_why(tmp_path: Path, sqlite_url: str):
    # the same server under two names: 127.0.0.1 with a cap of 1, localhost with a cap of 2
    with scene(tmp_path, sqlite_url, "127.0.0.1=1, localhost=2, *=4") as s:
        capped = s.add(("INBOX",))
        control = s.add(("INBOX",), host="localhost")
        assert wait_for(lambda: s.watching(control)), s.row(control)  # positive control
        assert len(s.server.idlers) == 1 and s.server.sessions == 1
        assert s.row(capped) is None
        assert s.words(capped) == (
            "polling only: the connection cap for 127.0.0.1 (1) leaves no room for a watch"
        )


def test_two_accounts_on_one_mailbox_share_its_cap(tmp_path: Path, sqlite_url: str):
    with scene(tmp_path, sqlite_url, "*=3") as s:
        first = s.add(("INBOX", "Lists"))  # the cap's two watch connections (lower id first)
        second = s.add(("INBOX",))  # the same mailbox (host and user): none left

        def capped() -> bool:
            row = s.row(second)
            return row is not None and row.state == "capped"

        assert wait_for(capped), s.row(second)
        assert wait_for(lambda: s.watching(first)), s.row(first)
        assert wait_for(lambda: len(s.server.idlers) == 2)
        assert s.server.idlers_on("Lists") == 1  # both of the first account's folders
        said = "the connection cap for 127.0.0.1 (3) is taken by other accounts' watches"
        assert s.words(second) == f"polling only: {said}"
        mailbox = ("imap", "127.0.0.1", "user")
        assert s.watcher.connections_to(mailbox) == 2  # what the scheduler sees
