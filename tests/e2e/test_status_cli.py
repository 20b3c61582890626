"""`mailhaul status` as a user types it, on a home with accounts in several states."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update

from mailhaul.adapters.db.tables import accounts, workers
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.settings import load_settings

PASSWORD = "Pa55-never-shown"


class Home:
    """A home whose account states are set directly through the stores."""

    def __init__(self, path: Path, database_url: str) -> None:
        settings = load_settings(path, {"database.url": database_url}, environ={})
        init_home(settings)
        self.app = App(settings)
        self.env = {
            **os.environ,
            "MAILHAUL_HOME": str(path),
            "MAILHAUL_DATABASE_URL": database_url,
            "COLUMNS": "200",
        }
        self.now = time.time()

    def add(self, owner: str) -> int:
        spec = AccountSpec(
            owner=owner,
            protocol=Protocol.POP3,
            host="pop.example.net",
            port=995,
            security=Security.SSL,
            username=owner.split("@")[0],
        )
        return self.app.accounts.add(spec, PASSWORD).id

    def run(self, account_id: int, state: str, result: str, failures: int = 0) -> None:
        """A finished poll: a run row with counts and log, the account's outcome."""
        app, now = self.app, self.now
        with app.db.begin() as conn:
            run_id = app.run_store.start(conn, account_id, "schedule", now - 120)
            app.run_store.finish(
                conn,
                run_id,
                result=result,
                finished_at=now - 110,
                fetched=4,
                size=2048,
                deleted=4,
                skipped=1,
                error=None if result == "ok" else "something failed",
                log=f"connecting to pop.example.net\nfinished: {result}\n",
            )
            assert app.account_store.claim(conn, account_id, "test:1:a", now - 120, 300)
            app.account_store.finish(
                conn,
                account_id,
                "test:1:a",
                state=state,
                result=result,
                error=None if result == "ok" else "something failed",
                finished_at=now - 110,
                next_poll_at=now + 190,
                consecutive_failures=failures,
            )

    def set(self, account_id: int, **values: Any) -> None:
        with self.app.db.begin() as conn:
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailhaul", "status", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Iterator[Home]:
    home = Home(tmp_path / "mh", database_url)
    ok = home.add("ok@example.org")
    home.run(ok, "ok", "ok")
    failing = home.add("error@example.org")
    home.run(failing, "error", "error", failures=3)
    running = home.add("running@example.org")
    home.run(running, "ok", "ok")
    with home.app.db.begin() as conn:
        assert home.app.account_store.claim(conn, running, "host:9:b", home.now, 300)
    paused = home.add("paused@example.org")
    home.run(paused, "login failed", "error", failures=5)
    home.set(paused, paused_reason="5 login failures in a row")
    missing = home.add("missing@example.org")
    home.run(missing, "destination missing", "error", failures=1)
    stale = home.add("new@example.org")  # a dead process's lease, expired: not running
    home.set(stale, lease_owner="gone:1:c", lease_expires=home.now - 10, next_poll_at=home.now - 30)
    with home.app.db.begin() as conn:
        conn.execute(
            insert(workers).values(
                id="host:9:w", hostname="host", pid=9, started_at=home.now - 3600,
                heartbeat_at=home.now - 5, running=1,
            )
        )  # fmt: skip
    assert (ok, failing, running, paused, missing, stale) == (1, 2, 3, 4, 5, 6)
    yield home
    home.app.db.dispose()


def at(text: str) -> float:
    """An ISO 8601 UTC time of the JSON (``2026-12-04T07:49:47Z``) as a Unix time."""
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text).timestamp()


def test_status_json_shows_every_state(home: Home):
    result = home.status("--json")
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout
    data = json.loads(result.stdout)
    states = {a["id"]: a["state"] for a in data["accounts"]}
    assert states == {
        1: "ok",
        2: "error",
        3: "running",
        4: "paused",
        5: "destination missing",
        6: "new",
    }
    summary = data["summary"]
    assert summary["accounts_total"] == 6
    assert summary["accounts_by_state"] == {
        "destination missing": 1,
        "error": 1,
        "new": 1,
        "ok": 1,
        "paused": 1,
        "running": 1,
    }
    assert summary["running_polls"] == 1
    assert 25 <= summary["queue_lag_seconds"] < 100  # account 6, due 30 s ago
    (worker,) = summary["workers"]
    assert worker["id"] == "host:9:w"
    assert 0 <= worker["heartbeat_age_seconds"] < 60
    assert at(worker["heartbeat_at"]) == pytest.approx(home.now - 5, abs=1)
    assert worker["stale"] is False

    ok, failing = data["accounts"][0], data["accounts"][1]
    assert ok["owner"] == "ok@example.org"
    assert ok["source"] == "pop3/ssl pop.example.net:995"
    assert ok["last_run"]["result"] == "ok"
    assert ok["last_run"]["fetched"] == 4
    assert ok["last_run"]["bytes"] == 2048
    assert ok["last_run"]["duration_seconds"] == pytest.approx(10, abs=0.01)
    assert at(ok["last_run"]["finished_at"]) == pytest.approx(home.now - 110, abs=1)
    assert at(ok["next_poll_at"]) == pytest.approx(home.now + 190, abs=1)
    assert ok["consecutive_failures"] == 0
    assert "last_log" not in ok
    assert failing["consecutive_failures"] == 3
    assert failing["last_run"]["error"] == "something failed"
    assert data["accounts"][3]["paused_reason"] == "5 login failures in a row"
    assert data["accounts"][5]["last_run"] is None


def test_status_of_one_account_includes_its_last_log(home: Home):
    result = home.status("--account", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (account,) = data["accounts"]
    assert account["id"] == 2
    assert account["last_log"] == "connecting to pop.example.net\nfinished: error\n"
    assert data["summary"]["accounts_total"] == 6

    text = home.status("--account", "2")
    assert text.returncode == 0, text.stderr
    assert "last log:" in text.stdout
    assert "finished: error" in text.stdout


def test_status_tables_for_people(home: Home):
    result = home.status()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for word in ("running polls", "queue lag", "host:9:w", "paused", "destination missing"):
        assert word in out
    assert "error@example.org" in out
    assert PASSWORD not in out


def test_status_of_a_missing_account_exits_3(home: Home):
    result = home.status("--account", "99")
    assert result.returncode == 3
    assert "account 99 does not exist" in result.stderr
