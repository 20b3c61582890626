"""Run history retention: old runs go, each account's newest finished run stays."""

from __future__ import annotations

import time
from pathlib import Path

from mailhaul.services.housekeeping import DAY, prune_runs
from support.harness import Harness


def add_run(h: Harness, account_id: int, started: float, result: str = "ok") -> int:
    runs = h.app.run_store
    with h.app.db.begin() as conn:
        run_id = runs.start(conn, account_id, "schedule", started)
        if result != "running":
            runs.finish(
                conn,
                run_id,
                result=result,
                finished_at=started + 1,
                fetched=1,
                size=10,
                deleted=1,
                skipped=0,
                error=None,
                log=f"run at {started}\n",
            )
    return run_id


def run_ids(h: Harness, account_id: int) -> list[int]:
    return sorted(run.id for run in h.app.accounts.runs_of(account_id, limit=100))


def test_runs_older_than_keep_days_are_pruned(imap: Harness):
    now = time.time()
    busy, idle = imap.add(), imap.add()
    old = [add_run(imap, busy.id, now - days * DAY) for days in (90, 45, 31)]
    recent = [add_run(imap, busy.id, now - days * DAY) for days in (29, 1)]
    idle_old = [add_run(imap, idle.id, now - days * DAY) for days in (60, 40)]

    pruned = prune_runs(imap.app.db, imap.app.run_store, keep_days=30, now=now)

    assert pruned == len(old) + 1
    assert run_ids(imap, busy.id) == recent
    # the idle account keeps its newest run (and so its "last run log"), however old
    assert run_ids(imap, idle.id) == idle_old[-1:]
    assert imap.app.accounts.runs_of(idle.id, 1)[0].log.startswith("run at")


def test_a_running_run_is_never_pruned_and_the_newest_finished_one_stays(imap: Harness):
    now = time.time()
    account = imap.add()
    older = add_run(imap, account.id, now - 50 * DAY)
    finished = add_run(imap, account.id, now - 40 * DAY, result="error")
    running = add_run(imap, account.id, now - 35 * DAY, result="running")

    assert prune_runs(imap.app.db, imap.app.run_store, keep_days=30, now=now) == 1
    assert older not in run_ids(imap, account.id)
    assert run_ids(imap, account.id) == [finished, running]


def test_keep_days_zero_keeps_everything(imap: Harness):
    account = imap.add()
    add_run(imap, account.id, time.time() - 1000 * DAY)
    add_run(imap, account.id, time.time() - 999 * DAY)
    assert prune_runs(imap.app.db, imap.app.run_store, keep_days=0) == 0
    assert len(run_ids(imap, account.id)) == 2


def test_runs_keep_days_setting(tmp_path: Path):
    from mailhaul.settings import load_settings
    from mailhaul.settings_toml import DEFAULT_TOML

    assert load_settings(tmp_path, environ={}).runs_keep_days == 30
    env = {"MAILHAUL_RUNS_KEEP_DAYS": "7"}
    assert load_settings(tmp_path, environ=env).runs_keep_days == 7
    assert "keep_days = 30" in DEFAULT_TOML
