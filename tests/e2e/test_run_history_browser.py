"""The run history in a real headless Chromium against `mailhaul serve`: 50 runs a page
newest first, the next page one click away, the filter that hides the runs that found
nothing, and a run's own log. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page, expect

from mailhaul.bootstrap import App
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.domain.scheduling import RunResult
from mailhaul.settings import load_settings
from support import cli as support_cli
from support.browser import save_screenshot
from support.processes import ServeProcess

ADMIN_PASSWORD = "admin-password-1"
RUNS = 60


def home_with_runs(tmp_path: Path) -> tuple[Path, int]:
    """A home with an admin and a disabled account with RUNS finished runs (every third
    fetched a message), as a service would have left them."""
    home = tmp_path / "mh"
    support_cli.Cli(home).ok("init", "--admin-password-stdin", stdin=ADMIN_PASSWORD + "\n")
    app = App(load_settings(home, {}, environ={}))
    try:
        spec = AccountSpec(
            "ann@local.test", Protocol.POP3, "mail.example.net", 995, Security.SSL, "ann",
            active=False,
        )  # fmt: skip
        account = app.accounts.add(spec, "a-source-password")
        recent = time.time() - 3600  # within runs.keep_days: serve prunes older runs
        with app.db.begin() as conn:
            for n in range(RUNS):
                run_id = app.run_store.start(conn, account.id, "schedule", recent + 10 * n)
                app.run_store.finish(
                    conn, run_id, result=RunResult.OK, finished_at=recent + 10 * n + 1,
                    fetched=1 if n % 3 == 0 else 0, size=2048, deleted=0, skipped=0,
                    error=None, log=f"run number {n}\n",
                )  # fmt: skip
    finally:
        app.db.dispose()
    return home, account.id


def test_run_history_pages_filters_and_opens_a_runs_log(tmp_path: Path, page: Page):
    home, account_id = home_with_runs(tmp_path)
    with ServeProcess(home) as serve:
        page.goto(f"{serve.url}/login")
        page.fill("#f-login", "admin")
        page.fill("#f-password", ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{serve.url}/accounts")
        page.goto(f"{serve.url}/accounts/{account_id}")
        page.locator("#all-runs").click()
        rows = page.locator("#run-history tbody tr")
        expect(rows).to_have_count(50)
        expect(rows.first).to_contain_text("schedule")
        save_screenshot(page, "runs-history")
        page.locator("#older-runs").click()
        expect(rows).to_have_count(RUNS - 50)
        expect(page.locator("#older-runs")).to_have_count(0)

        page.goto(f"{serve.url}/accounts/{account_id}/runs")
        page.get_by_label("Hide runs that found nothing").check()
        page.get_by_role("button", name="Show").click()
        expect(rows).to_have_count(RUNS // 3)  # only those that fetched something
        save_screenshot(page, "runs-history-hide-empty")

        rows.first.get_by_role("link").click()
        expect(page.locator("#run-log")).to_contain_text(f"run number {RUNS - 3}")
        save_screenshot(page, "run-log")
