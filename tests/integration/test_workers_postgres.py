"""Three `mailhaul worker` processes on PostgreSQL share 200 accounts on a real Dovecot.

Mail keeps arriving while they run, one worker is SIGKILLed mid-run: every message is
delivered exactly once, no account is ever polled by two workers at the same moment (checked
from the run history), and the killed worker's accounts are taken over after its lease.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from mailhaul.adapters.db.tables import accounts, runs
from mailhaul.bootstrap import App
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.settings import load_settings
from support.dovecot import DovecotServer

ACCOUNTS = 200
MESSAGE_ID = re.compile(rb"Message-ID: <(w\d+-\d+@example\.net)>")


def message(account: int, n: int) -> bytes:
    return b"Message-ID: <w%d-%d@example.net>\nSubject: %d/%d\n\nbody\n" % (account, n, account, n)


def worker(home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MAILHAUL_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "mailhaul", "worker", "--workers", "8"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_while_holding_leases(app: App, proc: subprocess.Popen[bytes]) -> tuple[set[int], float]:
    """SIGKILL ``proc`` at a moment it holds account leases: those accounts, and when."""
    mine = accounts.c.lease_owner.like(f"%:{proc.pid}:%")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with app.db.begin() as conn:
            held = set(conn.scalars(select(accounts.c.id).where(mine)))
        if held:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return held, time.time()
        time.sleep(0.002)
    return set(), time.time()


def delivered_ids(home: Path) -> Counter[bytes]:
    ids: Counter[bytes] = Counter()
    for path in (home / "mail").glob("*/*/new/*"):
        match = MESSAGE_ID.search(path.read_bytes())
        if match:
            ids[match.group(1)] += 1
    return ids


@pytest.mark.databases("postgresql")
def test_three_workers_share_accounts_exactly_once(
    tmp_path: Path, dovecot: DovecotServer, empty_database_url: str
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mailhaul.toml").write_text(
        f'[database]\nurl = "{empty_database_url}"\n'
        "[poll]\nlease_ttl = 5\ninterval = 10\n"
        '[web]\nlisten = ""\n'
    )
    env = {**os.environ, "MAILHAUL_HOME": str(home)}
    for args in (["init"], ["db", "upgrade"]):
        subprocess.run([sys.executable, "-m", "mailhaul", *args], env=env, check=True)
    app = App(load_settings(home, environ={}))
    mailboxes = []
    for i in range(ACCOUNTS):
        box = dovecot.new_mailbox()
        box.deliver(message(i, 0))
        mailboxes.append(box)
        spec = AccountSpec(
            owner=f"owner{i}@local.test",
            protocol=Protocol.IMAP if i % 2 else Protocol.POP3,
            host="localhost",
            port=dovecot.ports.imap if i % 2 else dovecot.ports.pop3,
            security=Security.NONE,
            username=box.user,
            options=RetrievalOptions(),
            interval=10,
        )
        app.accounts.add(spec, box.password)
    expected = {b"w%d-0@example.net" % i for i in range(ACCOUNTS)}
    workers = [worker(home) for _ in range(3)]
    try:
        held, killed_at = kill_while_holding_leases(app, workers[0])
        assert held, "the first worker never held a lease"
        for n in range(1, 4):  # mail keeps arriving while they work
            for i in range(0, ACCOUNTS, 3):
                mailboxes[i].deliver(message(i, n))
                expected.add(b"w%d-%d@example.net" % (i, n))
            time.sleep(2)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and set(delivered_ids(home)) != expected:
            time.sleep(1)
    finally:
        for proc in workers[1:]:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=90) for proc in workers[1:]]
    assert codes == [0, 0]
    ids = delivered_ids(home)
    assert set(ids) == expected, f"{len(expected - set(ids))} message(s) not delivered"
    assert max(ids.values()) == 1, "a message was delivered twice"
    assert all(box.list_messages() == [] for box in mailboxes[::7])
    with app.db.begin() as conn:  # the dead worker's accounts were polled by the others
        taken_over = set(
            conn.scalars(
                select(runs.c.account_id).where(
                    runs.c.account_id.in_(held), runs.c.started_at > killed_at
                )
            )
        )
    assert taken_over == held
    by_account: dict[int, list[tuple[float, float]]] = defaultdict(list)
    with app.db.begin() as conn:
        for row in conn.execute(select(runs.c.account_id, runs.c.started_at, runs.c.finished_at)):
            by_account[row.account_id].append((row.started_at, row.finished_at or time.time()))
    for spans in by_account.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, "two runs of one account overlapped"
    app.db.dispose()
