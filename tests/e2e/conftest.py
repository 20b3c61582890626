"""Fixtures for end-to-end tests in a real headless Chromium against `mailhaul serve`.

`browser`: Debian's chromium for the session (missing: the tests fail, pointing at
scripts/install-test-deps.sh). `page` / `page_no_js`: a page in a fresh context per test,
with and without JavaScript. `serve`: `mailhaul serve` on `serve_home` (a fresh home made
by `mailhaul init`; override `serve_home` in a module to prepare the home otherwise), stopped
with SIGTERM after the test, which then fails unless it exited 0. Screenshots:
`support.browser.save_screenshot`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from support.browser import launch_chromium, missing_chromium, new_page
from support.processes import ServeProcess


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless chromium, one for the session."""
    missing = missing_chromium()
    if missing is not None:
        pytest.fail(missing, pytrace=False)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies, no storage)."""
    fresh = new_page(browser)
    try:
        yield fresh
    finally:
        fresh.context.close()


@pytest.fixture
def page_no_js(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context with JavaScript off: the core flows must work there too."""
    fresh = new_page(browser, javascript=False)
    try:
        yield fresh
    finally:
        fresh.context.close()


@pytest.fixture
def serve_home(tmp_path: Path) -> Path:
    """The home `serve` runs on: a fresh one, initialised as `mailhaul init` does (serve
    refuses a home nobody initialised)."""
    home = tmp_path / "mh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
    made = subprocess.run(
        [sys.executable, "-m", "mailhaul", "--home", str(home), "init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return home


@pytest.fixture
def serve(serve_home: Path) -> Iterator[ServeProcess]:
    """`mailhaul serve` on `serve_home`, answering /healthz at `serve.url`."""
    process = ServeProcess(serve_home).start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"serve exited {code}:\n{process.log}"
