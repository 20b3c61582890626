"""The push state reaches the database within a second or two of changing, not only at the
watcher's next sync (every 5 s by default): here the sync is a minute apart, and the row
still says "watching" soon after the connection idles, and "reconnecting" soon after the
server ends it. A watcher driven in this process against a scripted server."""

from __future__ import annotations

import threading
from pathlib import Path

from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.push_setup import build_push_watcher
from support.databases import upgraded_sqlite
from support.mailhaul_home import Home
from support.scripted_imap import ImapScript, Mailbox, ScriptedImapServer
from support.waiting import wait_for


def test_state_changes_are_written_between_syncs(tmp_path: Path):
    toml = f'[database]\nurl = "{upgraded_sqlite(tmp_path)}"\n[poll]\ninterval = 3600\n'
    home = Home.create(tmp_path / "home", toml=toml)
    app, store, stop = home.app, PushWatchStore(), threading.Event()

    def row() -> WatchRow | None:
        with app.db.read() as conn:
            return store.rows(conn).get(account.id)

    def watching_since_after(since: float) -> bool:
        found = row()
        return found is not None and found.state == "watching" and found.since > since

    def state() -> str | None:
        found = row()
        return None if found is None else found.state

    with ScriptedImapServer(ImapScript(folders={"INBOX": Mailbox(7, [])})) as server:
        spec = AccountSpec(
            owner="o@local.test",
            protocol=Protocol.IMAP,
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
            username="user",
            options=RetrievalOptions(keep=True),
            interval=3600,
            push=True,
        )
        account = app.accounts.add(spec, "secret")
        watcher = build_push_watcher(app, stop, "here:1:test", lambda: None)
        watcher.sync_every = 60.0  # the first sync at once, the next one a minute later
        watcher.start()
        try:
            assert wait_for(lambda: state() is not None)  # written by the first sync
            assert wait_for(lambda: state() == "watching", 10), state()  # by a report
            first = row()
            assert first is not None
            # the server ends the session: reconnecting, then watching again, since later
            assert server.notify(b"* BYE [UNAVAILABLE] going away\r\n", bye=True) == 1
            assert wait_for(lambda: watcher.counters.reconnects == 1, 10)
            assert wait_for(lambda: watching_since_after(first.since), 15), row()
        finally:
            stop.set()
            watcher.join(10)
    app.db.dispose()
