"""The account list in a real headless Chromium against `mailhaul serve` and Dovecot: ticking
accounts and enabling, fetching, disabling and deleting them at once (the rows refresh themselves
while the polls run), the list at phone width, dark mode, and times in the browser's time
zone. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from support import cli as support_cli
from support.browser import DEFAULT_TIMEOUT_MS, save_screenshot
from support.dovecot import DovecotServer, Mailbox
from support.processes import ServeProcess

ADMIN_PASSWORD = "admin-password-1"
FETCH_TIMEOUT_MS = 30_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def serve_home(tmp_path: Path, dovecot: DovecotServer) -> Path:
    """A home with an admin whose accounts may use the test Dovecot (loopback, high ports)."""
    home = tmp_path / "mh"
    home.mkdir()
    ports = ",".join(str(p) for p in (110, 143, 993, 995, *astuple(dovecot.ports)))
    (home / "mailhaul.toml").write_text(
        f'[sources]\nallow_private = true\nallowed_ports = "{ports}"\n'
    )
    support_cli.Cli(home).ok("init", "--admin-password-stdin", stdin=ADMIN_PASSWORD + "\n")
    return home


def add_account(serve: ServeProcess, mailbox: Mailbox, dovecot: DovecotServer) -> int:
    """A disabled POP3 account on the test Dovecot, polled hourly once enabled."""
    added = support_cli.Cli(serve.home).ok(
        "account", "add", "--owner", f"{mailbox.user.split('@')[0]}@local.test",
        "--protocol", "pop3", "--host", "localhost", "--port", str(dovecot.pop3s_port),
        "--security", "ssl", "--ca-file", str(dovecot.ca_path), "--username", mailbox.user,
        "--password-stdin", "--interval", "3600", "--inactive",
        stdin=mailbox.password + "\n",
    )  # fmt: skip
    return int(added)


def delivered(home: Path, mailbox: Mailbox) -> int:
    new = home / "mail" / "local.test" / mailbox.user.split("@")[0] / "new"
    return len(list(new.iterdir())) if new.exists() else 0


def context_page(browser: Browser, **options: object) -> Iterator[Page]:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A phone-sized page (390 px wide, touch)."""
    yield from context_page(browser, viewport=PHONE, is_mobile=True, has_touch=True)


@pytest.fixture
def dark(browser: Browser) -> Iterator[Page]:
    """A page whose system asks for dark colours."""
    yield from context_page(browser, color_scheme="dark")


@pytest.fixture
def tokyo(browser: Browser) -> Iterator[Page]:
    """A page in a browser set to Japan's time zone (UTC+9, no daylight saving time)."""
    yield from context_page(browser, timezone_id="Asia/Tokyo")


def sign_in(page: Page, serve: ServeProcess) -> None:
    page.goto(f"{serve.url}/login")
    page.fill("#f-login", "admin")
    page.fill("#f-password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{serve.url}/accounts")


def row_of(page: Page, mailbox: Mailbox) -> Locator:
    return page.locator("#accounts tbody tr", has_text=mailbox.user)


def test_ticked_accounts_are_enabled_fetched_disabled_and_deleted_together(
    serve: ServeProcess, page: Page, dovecot: DovecotServer
):
    boxes = [dovecot.new_mailbox() for _ in range(3)]
    for box in boxes:
        box.deliver(b"Subject: first\n\nthe first message\n")
        add_account(serve, box, dovecot)
    first, second, untouched = boxes
    sign_in(page, serve)
    for box in boxes:
        expect(row_of(page, box).locator(".badge-inactive")).to_have_text("disabled")

    # tick all with the header box, untick one: Enable the two; their first polls run and
    # the rows show them without a reload
    page.locator("#select-all").check()
    row_of(page, untouched).locator("input[name=id]").uncheck()
    expect(page.locator("#select-all")).not_to_be_checked()
    page.get_by_role("button", name="Enable", exact=True).click()
    expect(page.locator(".flash-success")).to_contain_text("Enabled 2 accounts")
    page.evaluate("window.stillTheSamePage = true")
    for box in (first, second):
        row = row_of(page, box)
        expect(row).to_contain_text("ok, 1 fetched", timeout=FETCH_TIMEOUT_MS)
        expect(row.locator(".badge-inactive")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True  # refreshed by htmx
    expect(row_of(page, untouched).locator(".badge-inactive")).to_have_text("disabled")
    assert (delivered(serve.home, first), delivered(serve.home, second)) == (1, 1)
    assert delivered(serve.home, untouched) == 0

    # Fetch now on the two: queued, then fetched, the rows refreshing by themselves
    for box in (first, second):
        box.deliver(b"Subject: second\n\nthe second message\n")
        row_of(page, box).locator("input[name=id]").check()
    page.get_by_role("button", name="Fetch now", exact=True).click()
    expect(page.locator(".flash-success")).to_contain_text("Fetch queued for")
    page.evaluate("window.stillTheSamePage = true")
    for box in (first, second):
        expect(row_of(page, box).locator("td[data-label='Next run']")).to_have_text(
            re.compile(r"^\s*in \d"), timeout=FETCH_TIMEOUT_MS
        )  # no longer "queued now" or "running now": done, the next poll is scheduled
    assert page.evaluate("window.stillTheSamePage") is True
    assert (delivered(serve.home, first), delivered(serve.home, second)) == (2, 2)
    save_screenshot(page, "accounts-bulk-fetched")

    # Disable the two: both show disabled
    for box in (first, second):
        row_of(page, box).locator("input[name=id]").check()
    page.get_by_role("button", name="Disable", exact=True).click()
    expect(page.locator(".flash-success")).to_contain_text("Disabled 2 accounts")
    for box in boxes:
        expect(row_of(page, box).locator(".badge-inactive")).to_have_text("disabled")
    save_screenshot(page, "accounts-bulk-disabled")

    # Delete the two: a confirmation lists them first; the delivered mail stays
    for box in (first, second):
        row_of(page, box).locator("input[name=id]").check()
    page.get_by_role("button", name="Delete…").click()
    expect(page.locator("h1")).to_have_text("Delete these 2 accounts?")
    expect(page.locator("#chosen tbody tr")).to_have_count(2)
    expect(page.locator("#chosen")).not_to_contain_text(untouched.user)
    save_screenshot(page, "accounts-bulk-delete")
    page.click("#confirm-delete")
    expect(page.locator(".flash-success")).to_contain_text("Delivered mail is untouched")
    expect(page.locator("#accounts tbody tr")).to_have_count(1)
    expect(row_of(page, untouched)).to_be_visible()
    assert (delivered(serve.home, first), delivered(serve.home, second)) == (2, 2)


def test_the_list_fits_a_phone_with_the_state_in_view(
    serve: ServeProcess, phone: Page, dovecot: DovecotServer
):
    box = dovecot.new_mailbox()
    add_account(serve, box, dovecot)
    sign_in(phone, serve)
    state = row_of(phone, box).locator("td.col-state")
    expect(state).to_contain_text("new")
    expect(state.locator(".badge-inactive")).to_be_visible()
    in_view = (
        "([e]) => { const r = e.getBoundingClientRect(); return r.left >= 0 && r.right <= 390; }"
    )
    wide = "() => document.documentElement.scrollWidth"
    assert state.evaluate_all(in_view) is True
    assert phone.evaluate(wide) <= PHONE["width"]
    expect(phone.get_by_role("link", name="State")).to_be_visible()  # sorting stays at hand
    save_screenshot(phone, "accounts-phone")
    account_id = row_of(phone, box).locator("input[name=id]").get_attribute("value")
    for path in (f"/accounts/{account_id}", f"/accounts/{account_id}/edit", "/accounts/new",
                 "/users", "/settings", "/status", "/me"):  # fmt: skip
        phone.goto(f"{serve.url}{path}")
        assert phone.evaluate(wide) <= PHONE["width"], path  # wide tables scroll in a box
    phone.goto(f"{serve.url}/accounts/{account_id}")
    save_screenshot(phone, "account-phone")
    # positive control: the plain table, without the phone rules, puts the state off-screen
    phone.goto(f"{serve.url}/accounts")
    phone.evaluate("() => { for (const s of document.styleSheets) s.disabled = true; }")
    assert state.evaluate_all(in_view) is False


def luminance(css: str) -> float:
    """The relative luminance of an ``rgb(r, g, b)`` colour (WCAG 2)."""
    found = re.match(r"rgba?\((\d+), (\d+), (\d+)", css)
    assert found is not None, css

    def channel(value: str) -> float:
        c = int(value) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in found.groups())
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def colours(page: Page, selector: str) -> tuple[str, str]:
    """The text and background colours ``selector``'s element is drawn in."""
    found = page.eval_on_selector(
        selector,
        "e => { const s = getComputedStyle(e); return [s.color, s.backgroundColor]; }",
    )
    return str(found[0]), str(found[1])


def test_dark_mode_follows_the_system_with_readable_contrast(
    serve: ServeProcess, dark: Page, page: Page, dovecot: DovecotServer
):
    box = dovecot.new_mailbox()
    add_account(serve, box, dovecot)
    for shown in (dark, page):
        sign_in(shown, serve)
    text, background = colours(dark, "body")
    assert luminance(background) < 0.05  # dark
    assert contrast(text, background) >= 7
    badge_text, badge_background = colours(dark, ".badge-inactive")
    assert contrast(badge_text, badge_background) >= 4.5
    cell_text, _ = colours(dark, "#accounts tbody td[data-label='Owner'] a")
    _, table_background = colours(dark, ".table-wrap")
    assert luminance(table_background) < 0.05
    assert contrast(cell_text, table_background) >= 4.5
    for button in (".page-header .btn-primary", ".bulk-bar .btn-danger"):
        assert contrast(*colours(dark, button)) >= 4.5, button
    save_screenshot(dark, "accounts-dark")
    dark.locator("#accounts tbody a").first.click()
    expect(dark.locator("h1")).to_contain_text(box.user)
    save_screenshot(dark, "account-dark")
    dark.goto(f"{serve.url}/accounts/new")
    field_text, field_background = colours(dark, "#f-host")
    assert luminance(field_background) < 0.05 and contrast(field_text, field_background) >= 7
    save_screenshot(dark, "account-form-dark")
    # positive control: the same page in a light system is light
    _, light_background = colours(page, "body")
    assert luminance(light_background) > 0.8


def test_times_show_in_the_browsers_time_zone_with_utc_on_hover(serve: ServeProcess, tokyo: Page):
    sign_in(tokyo, serve)
    tokyo.goto(f"{serve.url}/status")
    shown = tokyo.locator("time[data-time=when]").last  # "As of …"
    expect(shown).to_contain_text("GMT+9")
    stamp = shown.get_attribute("datetime")
    title = shown.get_attribute("title")
    assert stamp is not None and title is not None
    utc = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    assert title == utc.strftime("%Y-%m-%d %H:%M:%S UTC")  # the UTC stays on hover
    in_tokyo = (utc + datetime.timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")
    assert shown.inner_text() == f"{in_tokyo} GMT+9"
    save_screenshot(tokyo, "status-tokyo-time")
    # positive control: without the script the server's UTC text is what shows
    tokyo.route("**/static/mailhaul.js", lambda route: route.abort())
    tokyo.reload()
    plain = tokyo.locator("time[data-time=when]").last
    expect(plain).to_contain_text(" UTC")
    assert "GMT+9" not in plain.inner_text()
