"""Debian's headless Chromium driven by the pinned Python playwright, and screenshots.

Never `playwright install`: the tests launch /usr/bin/chromium (Debian's `chromium` 156,
which playwright 1.64 matches; see /work/shared/notes/libraries.md). A missing browser fails
the tests with `missing_chromium()`'s message; it does not skip them.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTALL_HINT = "run scripts/install-test-deps.sh (as root) to install Debian's chromium"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
# Fail fast: a page that does not answer in this long is a failure, not a slow machine.
DEFAULT_TIMEOUT_MS = 15_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def missing_chromium() -> str | None:
    """Why the browser tests cannot run (chromium is not installed), or None."""
    if CHROMIUM.exists():
        return None
    return f"{CHROMIUM} is missing: {INSTALL_HINT}"


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless, with the flags the tests run it with."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
    )


def new_page(browser: Browser, *, javascript: bool = True) -> Page:
    """A page in a fresh context (no cookies, no storage); close it with `page.context.close()`."""
    context = browser.new_context(java_script_enabled=javascript)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return context.new_page()


def save_screenshot(page: Page, name: str) -> Path:
    """The whole page as ``test-output/screenshots/<name>.png`` (replaced if there); its path."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"screenshot name {name!r}: use letters, digits, '.', '_' and '-'")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
