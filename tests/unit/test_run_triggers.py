"""Each run records who asked for it: web, cli, api, cron (`POST /poll`) or the schedule,
also when a person's "fetch now" goes through the running service's queue."""

from __future__ import annotations

import threading
import time

from sqlalchemy import update

from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.access import Principal
from mailhaul.domain.account import Trigger
from mailhaul.services.scheduler import PollLimits, Scheduler
from support.harness import Harness


def _next_poll(imap: Harness, account_id: int, at: float) -> None:
    with imap.app.db.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(next_poll_at=at))


def test_runs_record_who_asked_for_them(imap: Harness):
    app = imap.app
    web, api, cli, cron, timed = (imap.add().id for _ in range(5))
    later = time.time() + 3600
    for account_id in (web, api, cli, timed):
        _next_poll(imap, account_id, later)  # not due: only a request starts them
    _next_poll(imap, cron, time.time() - 1)
    admin = Principal.system()
    app.account_access.fetch_now(admin, web, Trigger.WEB)
    app.account_access.fetch_now(admin, api, Trigger.API)
    app.accounts.request_fetch(cli, Trigger.CLI)
    assert app.account_access.poll_due(admin) == 1  # the one due account: cron's
    _next_poll(imap, timed, time.time() - 1)  # due by time now, after the cron request
    scheduler = Scheduler(app.db, app.account_store, imap.poller, PollLimits(workers=2))
    thread = threading.Thread(target=scheduler.run, kwargs={"grace": 5})
    thread.start()
    ids = (web, api, cli, cron, timed)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = [app.accounts.runs_of(account_id) for account_id in ids]
            if all(r and r[0].result != "running" for r in runs):
                break
            time.sleep(0.05)
    finally:
        scheduler.stop.set()
        thread.join(timeout=10)
    triggers = [[run.trigger for run in app.accounts.runs_of(account_id)] for account_id in ids]
    assert triggers == [["web"], ["api"], ["cli"], ["cron"], ["schedule"]]


def test_a_requested_trigger_is_taken_once(imap: Harness):
    account = imap.add()
    app = imap.app
    app.accounts.request_fetch(account.id, Trigger.WEB)
    with app.db.begin() as conn:
        assert app.account_store.take_triggers(conn, [account.id]) == {account.id: "web"}
        assert app.account_store.take_triggers(conn, [account.id]) == {}


def test_a_request_a_poll_in_the_calling_process_answered_is_not_taken_later(imap: Harness):
    account = imap.add()
    app = imap.app
    app.accounts.request_fetch(account.id, Trigger.WEB)
    imap.poller.poll(account.id, trigger=Trigger.CLI)  # it claims the lease itself
    _next_poll(imap, account.id, time.time() - 1)  # due by time
    with app.db.begin() as conn:
        claimed = app.account_store.claim_due(conn, "w", time.time(), 60.0, 1)
        assert claimed == [account.id]
        assert app.account_store.take_triggers(conn, claimed) == {}  # the schedule's run
    assert [run.trigger for run in app.accounts.runs_of(account.id)] == ["cli"]
