"""Two `mailhaul worker` processes on PostgreSQL watch each push account exactly once (one
IDLE connection per account between them); when the one holding the watches is SIGKILLed,
the other takes them over and pushed mail is still delivered once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from support.mailhaul_home import Home
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer
from support.waiting import wait_for

ACCOUNTS = 3


def worker(home: Path) -> subprocess.Popen[bytes]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "mailhaul", "worker"],
        env={**inherited, "MAILHAUL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.databases("postgresql")
def test_each_account_is_watched_once_and_a_killed_workers_watches_are_taken_over(
    tmp_path: Path, database_url: str
):
    toml = f'[database]\nurl = "{database_url}"\n[poll]\ninterval = 3600\ntimeout = 5\n'
    home = Home.create(tmp_path / "home", toml=toml)
    store = PushWatchStore()

    def rows() -> dict[int, WatchRow]:
        with home.app.db.read() as conn:
            return {i: r for i, r in store.rows(conn).items() if r.state == "watching"}

    script = ImapScript(folders={"INBOX": Mailbox(7, [])})
    with ScriptedImapServer(script) as server:
        for n in range(ACCOUNTS):
            spec = AccountSpec(
                owner=f"o{n}@local.test",
                protocol=Protocol.IMAP,
                host="127.0.0.1",
                port=server.port,
                security=Security.NONE,
                username="user",
                options=RetrievalOptions(keep=True, fetchall=True),  # each its own copy
                interval=3600,
            )
            home.app.accounts.add(spec, "secret")
        procs = [worker(home.app.settings.home), worker(home.app.settings.home)]
        try:
            assert wait_for(lambda: len(rows()) == ACCOUNTS), rows()
            assert wait_for(lambda: len(server.idlers) == ACCOUNTS)
            # more than a sync of each worker: never two watchers of one account (a watch
            # may move to the worker that started later, so one may be briefly unwatched)
            most, end = 0, time.monotonic() + 6.0
            while time.monotonic() < end:
                most = max(most, len(server.idlers))
                time.sleep(0.05)
            assert most == ACCOUNTS
            settled = lambda: len(server.idlers) == ACCOUNTS and len(rows()) == ACCOUNTS  # noqa: E731
            assert wait_for(settled, 15), rows()

            holder_pid = int(next(iter(rows().values())).worker_id.split(":")[1])
            [killed] = [p for p in procs if p.pid == holder_pid]
            [survivor] = [p for p in procs if p is not killed]
            killed.send_signal(signal.SIGKILL)
            killed.wait()

            def taken_over() -> bool:
                held = rows()
                return len(held) == ACCOUNTS and all(
                    f":{survivor.pid}:" in row.worker_id for row in held.values()
                )

            assert wait_for(taken_over, 40), rows()
            assert wait_for(lambda: len(server.idlers) == ACCOUNTS, 10)
            server.add_message(Message(1, b"Subject: after the kill\r\n\r\nbody\r\n"))
            delivered = lambda: list(home.app.settings.home.glob("mail/*/*/new/*"))  # noqa: E731
            assert wait_for(lambda: len(delivered()) >= ACCOUNTS, 20)
            time.sleep(1.0)
            assert len(delivered()) == ACCOUNTS  # one copy for each account, none twice
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
    assert server.errors == []
    home.app.db.dispose()
