"""The browser-test plumbing: Debian's chromium opens a page `mailhaul serve` serves."""

from __future__ import annotations

import json

from playwright.sync_api import Page

from support.browser import save_screenshot
from support.processes import ServeProcess


def test_chromium_shows_healthz_of_a_running_serve(serve: ServeProcess, page: Page):
    response = page.goto(f"{serve.url}/healthz")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    health = json.loads(page.locator("body").inner_text())
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    shot = save_screenshot(page, "healthz")
    assert shot.stat().st_size > 0
