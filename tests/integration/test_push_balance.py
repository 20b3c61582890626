"""Several workers on PostgreSQL share the push watches: the row of a holder that is dead
(no longer beating in the workers table) is deleted by the next sync of any watcher, and a
worker started later ends up with about half of the accounts (the first one leaves the
excess politely, the second takes it, and the first closes an account's connection before
it lets go of its row, so no account has two watchers even for a moment); accounts of one
remote mailbox held by two workers share its connection cap. Two watchers are driven
directly in this process, each registered as a worker, with a short sync."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert

from mailhaul import push_setup
from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.adapters.db.tables import push_watches
from mailhaul.adapters.db.workers import WorkerStore
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.push_setup import build_push_watcher
from mailhaul.services.leases import new_owner
from mailhaul.services.push import PushWatcher
from support.mailhaul_home import Home
from support.scripted_imap import ImapScript, Mailbox, ScriptedImapServer
from support.waiting import wait_for

ACCOUNTS = 4
GHOST = "gone-host:4242:0badc0de"  # a worker whose process is gone: no workers row


class ReleaseLog(PushWatchStore):
    """A watcher's rows, noting each account whose row it let go of and whether the
    watcher still had a connection open for it then."""

    def __init__(self) -> None:
        super().__init__()
        self.watcher: PushWatcher | None = None  # set once it is built
        self.released: list[tuple[int, bool]] = []

    def release(self, conn: Connection, worker: str, ids: Collection[int] | None = None) -> None:
        assert self.watcher is not None
        open_for = {key[0] for key, watch in self.watcher.watches.items() if watch.link}
        self.released += [(i, i in open_for) for i in ids or ()]
        super().release(conn, worker, ids)


@pytest.mark.databases("postgresql")
def test_dead_rows_go_and_a_second_worker_gets_half(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(push_setup, "PushWatchStore", ReleaseLog)
    toml = (
        f'[database]\nurl = "{database_url}"\n[poll]\ninterval = 3600\ntimeout = 2\n'
        '[limits]\nconnections_per_account = "*=10"\n'  # the accounts share one mailbox
    )
    home = Home.create(tmp_path / "home", toml=toml)
    app, store, workers = home.app, PushWatchStore(), WorkerStore()
    script = ImapScript(folders={"INBOX": Mailbox(7, [])})
    stop = threading.Event()
    watchers: list[PushWatcher] = []

    def start(worker: str) -> None:
        with app.db.begin() as conn:
            workers.register(conn, worker, time.time())
        watcher = build_push_watcher(app, stop, worker, lambda: None)
        assert isinstance(watcher.deps.store, ReleaseLog)
        watcher.deps.store.watcher = watcher
        watcher.sync_every = 0.5
        watcher.start()
        watchers.append(watcher)

    def holders() -> Counter[str]:
        with app.db.begin() as conn:
            for watcher in watchers:  # both alive throughout
                workers.heartbeat(conn, watcher.worker_id, time.time(), 0)
            return Counter(row.worker_id for row in store.rows(conn).values())

    with ScriptedImapServer(script) as server:
        ids = []
        for n in range(ACCOUNTS + 1):
            spec = AccountSpec(
                owner=f"o{n}@local.test",
                protocol=Protocol.IMAP,
                host="127.0.0.1",
                port=server.port,
                security=Security.NONE,
                username="user",
                options=RetrievalOptions(keep=True),
                interval=3600,
                push=n < ACCOUNTS,  # the last one is not watched: only its dead row is there
            )
            ids.append(app.accounts.add(spec, "secret").id)
        with app.db.begin() as conn:
            # the lease has not run out (300 s): the holder is just gone
            row = {"account_id": ids[-1], "worker_id": GHOST, "lease_expires": time.time() + 300}
            conn.execute(insert(push_watches).values(state="watching", since=time.time(), **row))
        assert holders() == {GHOST: 1}
        first, second = new_owner(), new_owner()
        try:
            start(first)
            assert wait_for(lambda: holders() == {first: ACCOUNTS}), holders()  # ghost gone
            assert wait_for(lambda: len(server.idlers) == ACCOUNTS)
            start(second)
            half = ACCOUNTS // 2
            assert wait_for(lambda: holders() == {first: half, second: half}, 20), holders()
            assert wait_for(lambda: len(server.idlers) == ACCOUNTS, 20)  # each watched once
            assert "LOGOUT" in server.command_names()  # the first left its excess politely
            log = watchers[0].deps.store
            assert isinstance(log, ReleaseLog)
            let_go = [account_id for account_id, _ in log.released]
            assert len(set(let_go)) == half, log.released  # the excess, each
            assert not any(still_open for _, still_open in log.released), log.released
        finally:
            stop.set()
            for watcher in watchers:
                watcher.join(10)
    app.db.dispose()


@pytest.mark.databases("postgresql")
def test_two_workers_watching_one_mailbox_share_its_cap(tmp_path: Path, database_url: str):
    # Two accounts on one remote mailbox, each asking for an IDLE on INBOX and Lists (the
    # server has no NOTIFY), held by two workers: the cap of 3 leaves 2 connections for
    # watches in all, and the lower id has them, whichever process holds it.
    toml = (
        f'[database]\nurl = "{database_url}"\n[poll]\ninterval = 3600\ntimeout = 2\n'
        '[limits]\nconnections_per_account = "*=3"\n'
    )
    home = Home.create(tmp_path / "home", toml=toml)
    app, store, workers = home.app, PushWatchStore(), WorkerStore()
    folders = ("INBOX", "Lists")
    script = ImapScript(folders={name: Mailbox(7, []) for name in folders})
    stop = threading.Event()
    watchers: list[PushWatcher] = []

    def rows() -> dict[int, WatchRow]:
        with app.db.begin() as conn:
            for watcher in watchers:  # both alive throughout
                workers.heartbeat(conn, watcher.worker_id, time.time(), 0)
            return store.rows(conn)

    with ScriptedImapServer(script) as server:
        spec = AccountSpec(
            owner="o@local.test",
            protocol=Protocol.IMAP,
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
            username="user",
            options=RetrievalOptions(folders=folders, push_folders=folders, keep=True),
            interval=3600,
        )
        first, second = (app.accounts.add(spec, "secret").id for _ in range(2))
        names = [new_owner(), new_owner()]
        with app.db.begin() as conn:  # both beat before either takes a share: one each
            for name in names:
                workers.register(conn, name, time.time())
        try:
            for name in names:
                watcher = build_push_watcher(app, stop, name, lambda: None)
                watcher.sync_every = 0.5
                watcher.start()
                watchers.append(watcher)

            def shared() -> bool:
                found = rows()
                held = {found[i].worker_id for i in (first, second) if i in found}
                return len(held) == 2 and found[first].state == "watching"

            assert wait_for(shared, 20), rows()
            assert wait_for(lambda: rows()[second].state == "capped", 20), rows()
            assert wait_for(lambda: len(server.idlers) == 2, 20), len(server.idlers)
            assert rows()[first].connections == 2  # the positive control: both folders
            most, end = 0, time.monotonic() + 2.0  # four syncs of each: it stays so
            while time.monotonic() < end:
                most = max(most, len(server.idlers))
                time.sleep(0.05)
            assert most == 2
            assert server.idlers_on("Lists") == 1
        finally:
            stop.set()
            for watcher in watchers:
                watcher.join(10)
    assert server.errors == []
    app.db.dispose()
