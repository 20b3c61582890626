"""The serve loop: due accounts get polled, a stop request ends it cleanly."""

from __future__ import annotations

import threading
import time

from mailhaul.services.scheduler import PollLimits, Scheduler
from support.harness import Harness


def test_due_accounts_are_polled_and_stop_ends_the_loop(imap: Harness):
    imap.server.add(b"Subject: one\r\n\r\nx\r\n")
    first = imap.add()
    second = imap.add(keep=True)
    app = imap.app
    scheduler = Scheduler(app.db, app.account_store, imap.poller, PollLimits(workers=2))
    thread = threading.Thread(target=scheduler.run, kwargs={"grace": 5})
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = [app.accounts.runs_of(a.id) for a in (first, second)]
        if all(r and r[0].result != "running" for r in runs):
            break
        time.sleep(0.05)
    scheduler.stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    for account in (first, second):
        state = app.accounts.get(account.id)
        assert state.last_result == "ok"
        assert state.next_poll_at is not None
        assert state.next_poll_at > time.time() + 200  # one interval (300 s) later


def test_inactive_accounts_are_not_polled(imap: Harness):
    inactive = imap.add()
    active = imap.add()  # the positive control: due at the same time, and polled
    app = imap.app
    app.accounts.set_active(inactive.id, False)
    # Two workers: a scheduler that ignored the flag would claim both in its first round.
    scheduler = Scheduler(app.db, app.account_store, imap.poller, PollLimits(workers=2))
    thread = threading.Thread(target=scheduler.run, kwargs={"grace": 5})
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = app.accounts.runs_of(active.id)
        if runs and runs[0].result != "running":
            break
        time.sleep(0.05)
    scheduler.stop.set()
    thread.join(timeout=10)  # polls in hand finish (grace) before run() returns
    assert not thread.is_alive()
    assert app.accounts.get(active.id).last_result == "ok"
    assert app.accounts.runs_of(inactive.id) == []
