"""Several workers on PostgreSQL share the push watches: the row of a holder that is dead
(no longer beating in the workers table) is deleted by the next sync of any watcher, and a
worker started later ends up with about half of the accounts (the first one leaves the
excess politely, the second takes it). Two watchers are driven directly in this process,
each registered as a worker, with a short sync."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import insert

from mailhaul.adapters.db.push_watches import PushWatchStore
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


@pytest.mark.databases("postgresql")
def test_dead_rows_go_and_a_second_worker_gets_half(tmp_path: Path, database_url: str):
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
        finally:
            stop.set()
            for watcher in watchers:
                watcher.join(10)
    app.db.dispose()
