"""The whole run history, as the panel and the CLI show it: pages of 50 newest first, a
filter that hides the runs that found nothing, and each run's own log one click away."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.domain.scheduling import RunResult
from mailhaul.web.app import create_app
from support.api import PASSWORD, add_person, make_app
from support.pages import Browser


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = make_app(tmp_path / "home", database_url)
    yield app
    app.db.dispose()


def account_with_runs(app: App, owner: str, count: int) -> tuple[int, list[int]]:
    """An account with ``count`` finished runs: every third fetched one message."""
    spec = AccountSpec(owner, Protocol.POP3, "mail.example.net", 995, Security.SSL, "u")
    account = app.accounts.add(spec, "pw")
    ids = []
    with app.db.begin() as conn:
        for n in range(count):
            run_id = app.run_store.start(conn, account.id, "schedule", 1_700_000_000.0 + n)
            app.run_store.finish(
                conn, run_id, result=RunResult.OK, finished_at=1_700_000_001.0 + n,
                fetched=1 if n % 3 == 0 else 0, size=100, deleted=0, skipped=0, error=None,
                log=f"run number {n}\n",
            )  # fmt: skip
            ids.append(run_id)
    return account.id, ids


def test_the_panel_pages_filters_and_opens_each_runs_log(app: App) -> None:
    add_person(app, "owner", "owner@a.test", Role.USER)
    add_person(app, "other", "other@a.test", Role.USER)
    account_id, ids = account_with_runs(app, "owner@a.test", 60)
    other_id, other_runs = account_with_runs(app, "other@a.test", 1)
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("owner@a.test", PASSWORD).status_code == 303

    first = browser.get(f"/accounts/{account_id}/runs").text
    shown = [int(n) for n in re.findall(rf'href="/accounts/{account_id}/runs/(\d+)"', first)]
    assert shown == ids[::-1][:50]  # the newest 50, newest first
    older = re.search(r'id="older-runs" href="([^"]+)"', first)
    assert older is not None
    second = browser.get(older.group(1).replace("&amp;", "&")).text
    rest = [int(n) for n in re.findall(rf'href="/accounts/{account_id}/runs/(\d+)"', second)]
    assert rest == ids[::-1][50:] and 'id="older-runs"' not in second

    busy = browser.get(f"/accounts/{account_id}/runs?hide_empty=1").text
    kept = [int(n) for n in re.findall(rf'href="/accounts/{account_id}/runs/(\d+)"', busy)]
    assert kept == [run for n, run in enumerate(ids) if n % 3 == 0][::-1]

    page = browser.get(f"/accounts/{account_id}/runs/{ids[7]}")
    assert page.status_code == 200 and "run number 7" in page.text
    assert 'id="all-runs"' in browser.get(f"/accounts/{account_id}").text
    # another's run, through one's own account or theirs: as missing
    assert browser.get(f"/accounts/{account_id}/runs/{other_runs[0]}").status_code == 404
    assert browser.get(f"/accounts/{other_id}/runs/{other_runs[0]}").status_code == 404


def test_the_cli_pages_filters_and_prints_one_runs_log(app: App) -> None:
    account_id, ids = account_with_runs(app, "owner@a.test", 5)
    home = app.settings.home
    env_home = {"MAILHAUL_HOME": str(home)}

    def mailhaul(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
        db = {"MAILHAUL_DATABASE_URL": app.settings.database_url}
        done = subprocess.run(
            [sys.executable, "-m", "mailhaul", *args],
            env={**env, **env_home, **db}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    page = json.loads(mailhaul("runs", str(account_id), "--limit", "2", "--json"))
    assert [run["id"] for run in page] == [ids[4], ids[3]]
    older = json.loads(mailhaul("runs", str(account_id), "--before", str(ids[3]), "--json"))
    assert [run["id"] for run in older] == [ids[2], ids[1], ids[0]]
    busy = json.loads(mailhaul("runs", str(account_id), "--hide-empty", "--json"))
    assert [run["id"] for run in busy] == [ids[3], ids[0]]
    assert mailhaul("log", str(account_id), "--run", str(ids[1])) == "run number 1\n"
    assert mailhaul("log", str(account_id)) == "run number 4\n"


def test_the_api_pages_filters_and_gives_each_runs_log(app: App) -> None:
    from support.api import Api, client_for

    owner = add_person(app, "owner", "owner@a.test", Role.USER)
    account_id, ids = account_with_runs(app, "owner@a.test", 7)
    api = Api(client_for(app)[1], owner.key)
    page = api.get(f"/accounts/{account_id}/runs?limit=3").json()
    assert [run["id"] for run in page] == ids[::-1][:3]
    older = api.get(f"/accounts/{account_id}/runs?before={page[-1]['id']}").json()
    assert [run["id"] for run in older] == ids[::-1][3:]
    busy = api.get(f"/accounts/{account_id}/runs?hide_empty=true").json()
    assert [run["id"] for run in busy] == [ids[6], ids[3], ids[0]]
    one = api.get(f"/accounts/{account_id}/runs/{ids[2]}").json()
    assert one["id"] == ids[2] and one["log"] == "run number 2\n"
    assert api.get(f"/accounts/{account_id}/runs/999999").status_code == 404
