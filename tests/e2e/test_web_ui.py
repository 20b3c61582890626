"""The web UI in a real headless Chromium against a real `mailhaul serve` and Dovecot.

An admin adds an account for a Dovecot mailbox, tests the connection, fetches, edits,
disables and deletes it; a user cannot open another's account; with JavaScript off a user
still signs in, adds an account, fetches and sees the result. Screenshots of the main pages
go to test-output/screenshots/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import astuple
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from support.browser import save_screenshot
from support.dovecot import DovecotServer, Mailbox
from support.processes import ServeProcess

ADMIN_PASSWORD = "admin-password-1"
USER_PASSWORD = "user-password-1"
FETCH_TIMEOUT_MS = 30_000


def mailhaul(home: Path, *args: str, stdin: str = "") -> str:
    """Run the CLI on ``home``; its stdout (the test fails on a non-zero exit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
    result = subprocess.run(
        [sys.executable, "-m", "mailhaul", *args],
        env={**env, "MAILHAUL_HOME": str(home)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def serve_home(tmp_path: Path, dovecot: DovecotServer) -> Path:
    """A home with an admin and two users; users may use the test Dovecot (loopback, high
    ports), which only an admin could by default."""
    home = tmp_path / "mh"
    home.mkdir()
    ports = ",".join(str(p) for p in (110, 143, 993, 995, *astuple(dovecot.ports)))
    (home / "mailhaul.toml").write_text(
        f'[sources]\nallow_private = true\nallowed_ports = "{ports}"\n'
    )
    mailhaul(home, "init", "--admin-password-stdin", stdin=ADMIN_PASSWORD + "\n")
    for login in ("ann@local.test", "bob@local.test"):
        mailhaul(home, "user", "add", login, "--role", "user", "--password-stdin",
                 stdin=USER_PASSWORD + "\n")  # fmt: skip
    return home


def sign_in(page: Page, serve: ServeProcess, login: str, password: str) -> None:
    page.goto(f"{serve.url}/login")
    page.fill("#f-login", login)
    page.fill("#f-password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{serve.url}/accounts")


def delivered(home: Path, local: str) -> list[bytes]:
    new = home / "mail" / "local.test" / local / "new"
    return [path.read_bytes() for path in sorted(new.iterdir())] if new.exists() else []


def test_the_form_offers_what_only_imap_has_for_imap_only(
    serve: ServeProcess, page: Page, mailbox: Mailbox, dovecot: DovecotServer
):
    sign_in(page, serve, "admin", ADMIN_PASSWORD)
    page.goto(f"{serve.url}/accounts/new")
    page.select_option("#f-protocol", "imap")
    expect(page.locator("#push-field")).to_be_visible()  # the control
    page.fill("#f-push_folders", "Lists")  # typed, then the protocol changes
    page.select_option("#f-protocol", "pop3")
    for part in ("#push-field", "#folders-field", "#folder-rules"):
        expect(page.locator(part)).to_be_hidden()
    page.fill("#f-owner", "pop.user@local.test")
    page.select_option("#f-security", "ssl")
    page.fill("#f-host", "localhost")
    page.fill("#f-port", str(dovecot.pop3s_port))
    page.fill("#f-ca_file", str(dovecot.ca_path))
    page.fill("#f-username", mailbox.user)
    page.fill("#f-password", mailbox.password)
    page.click("#save")
    expect(page.locator("#fetch-progress")).to_be_visible(timeout=FETCH_TIMEOUT_MS)
    assert "/accounts/new" not in page.url  # saved: the hidden IMAP-only values were not sent
    expect(page.locator("#push-state")).to_contain_text("off")
    page.goto(f"{serve.url}/accounts/new")
    page.select_option("#f-protocol", "pop3")
    page.select_option("#f-protocol", "imap")
    expect(page.locator("#push-field")).to_be_visible()  # and back


def test_an_admin_adds_tests_fetches_edits_disables_and_deletes_an_account(
    serve: ServeProcess, page: Page, mailbox: Mailbox, dovecot: DovecotServer
):
    mailbox.deliver(b"Subject: first\n\nthe first message\n")
    page.goto(f"{serve.url}/accounts")
    page.wait_for_url(f"{serve.url}/login?next=%2Faccounts")
    save_screenshot(page, "login")
    sign_in(page, serve, "admin", ADMIN_PASSWORD)

    # the form: a field error first, shown beside its field
    page.get_by_role("link", name="Add account").click()
    page.fill("#f-owner", "i.petrov@local.test")
    page.select_option("#f-protocol", "imap")
    page.select_option("#f-security", "ssl")
    expect(page.locator("#f-port")).to_have_attribute("placeholder", "993")  # the little JS
    page.fill("#f-host", "not a host!")
    page.fill("#f-username", mailbox.user)
    page.fill("#f-password", mailbox.password)
    page.click("#save")
    expect(page.locator("#e-host")).to_contain_text("is not a valid host name")
    expect(page.locator("#f-host")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-password")).to_have_value("")  # never sent back
    save_screenshot(page, "account-form-error")

    # Test connection, inline (htmx): the folder count
    page.fill("#f-host", "localhost")
    expect(page.locator("#error-summary")).to_be_hidden()  # the stale error goes
    page.fill("#f-port", str(dovecot.imaps_port))
    page.fill("#f-ca_file", str(dovecot.ca_path))
    page.fill("#f-password", mailbox.password)
    mailbox.create_folder("Archive")
    page.click("#test-connection")
    result = page.locator("#test-result .test-result")
    expect(result).to_contain_text("Connection OK", timeout=FETCH_TIMEOUT_MS)
    expect(result.locator(".folder-count")).to_have_text("1")
    assert page.url == f"{serve.url}/accounts/new"  # no page load
    # the server's folders are choices: INBOX (already in Folders) ticked, Archive to tick
    expect(page.locator("#folder-choices input[value=INBOX]")).to_be_checked()
    page.locator("#folder-choices input[value=Archive]").check()
    save_screenshot(page, "account-form-test")

    # Save: the first poll runs at once and the page shows it without a reload
    page.click("#save")
    progress = page.locator("#fetch-progress")
    expect(progress).to_contain_text("1 message fetched", timeout=FETCH_TIMEOUT_MS)
    assert len(delivered(serve.home, "i.petrov")) == 1
    expect(page.get_by_text("INBOX, Archive", exact=True)).to_be_visible()  # the ticked one
    account_url = page.url.split("?")[0]

    # Fetch now: the new message's count and the log appear without a reload
    mailbox.deliver(b"Subject: second\n\nthe second message\n")
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_role("button", name="Fetch now").click()
    expect(page.locator("#runs tbody tr")).to_have_count(2, timeout=FETCH_TIMEOUT_MS)
    expect(progress).to_contain_text("1 message fetched")
    expect(page.locator("#last-log")).to_contain_text("1 fetched")
    assert page.evaluate("window.stillTheSamePage") is True
    messages = delivered(serve.home, "i.petrov")
    assert len(messages) == 2
    assert any(m.endswith(b"Subject: second\n\nthe second message\n") for m in messages)
    save_screenshot(page, "account-after-fetch")

    page.goto(f"{serve.url}/accounts")
    expect(page.locator("#accounts tbody tr")).to_have_count(1)
    expect(page.locator("#accounts")).to_contain_text("i.petrov@local.test")
    save_screenshot(page, "accounts")

    # the admin pages
    page.goto(f"{serve.url}/users")
    expect(page.locator("#users")).to_contain_text("ann@local.test")
    save_screenshot(page, "users")
    page.goto(f"{serve.url}/status")
    expect(page.locator("#workers tbody tr")).to_have_count(1)
    expect(page.locator(".state-counts")).to_contain_text("ok 1")
    save_screenshot(page, "status")
    page.goto(f"{serve.url}/settings")
    expect(page.locator("#delivery")).to_contain_text("maildir")
    save_screenshot(page, "settings")

    # edit: keep on, a new interval; the password field stays empty and the stored one works
    page.goto(account_url)
    page.get_by_role("link", name="Edit").click()
    expect(page.locator("#f-password")).to_have_value("")
    page.check("#f-keep")
    page.fill("#f-interval", "900")
    page.click("#save")
    expect(page.locator(".flash-success")).to_contain_text("Saved.")
    expect(page.locator("#h-settings + dl")).to_contain_text("15 min")
    expect(page.locator("#h-settings + dl")).to_contain_text("keep")

    # disable, then delete with a confirmation; the delivered mail stays
    page.get_by_role("button", name="Disable").click()
    expect(page.locator(".flash-success")).to_contain_text("Disabled")
    expect(page.get_by_role("button", name="Enable")).to_be_visible()
    page.get_by_role("link", name="Delete").click()
    expect(page.locator("h1")).to_have_text("Delete this account?")
    page.click("#confirm-delete")
    page.wait_for_url(f"{serve.url}/accounts")
    expect(page.locator(".flash-success")).to_contain_text("Delivered mail is untouched")
    assert len(delivered(serve.home, "i.petrov")) == 2
    assert page.goto(account_url) is not None
    expect(page.locator("h1")).to_have_text("Not found")


def test_a_user_cannot_see_another_users_account(serve: ServeProcess, page: Page):
    out = mailhaul(
        serve.home, "account", "add", "--owner", "bob@local.test", "--host", "mail.example.net",
        "--username", "bob", "--password-stdin", "--inactive", stdin="bobs-secret\n",
    )  # fmt: skip
    bobs = int(out.strip())
    sign_in(page, serve, "ann@local.test", USER_PASSWORD)
    expect(page.locator(".empty")).to_contain_text("No accounts yet")
    response = page.goto(f"{serve.url}/accounts/{bobs}")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    response = page.goto(f"{serve.url}/accounts/{bobs}/edit")
    assert response is not None and response.status == 404
    assert page.goto(f"{serve.url}/users") is not None
    expect(page.locator("h1")).to_have_text("Not allowed")


def test_the_core_flows_work_with_javascript_off(
    serve: ServeProcess, page_no_js: Page, mailbox: Mailbox, dovecot: DovecotServer
):
    page = page_no_js
    mailbox.deliver(b"Subject: no js\n\nfetched without javascript\n")
    sign_in(page, serve, "ann@local.test", USER_PASSWORD)
    page.get_by_role("link", name="Add account").click()
    expect(page.locator(".value")).to_have_text("ann@local.test")  # a user's own address
    page.select_option("#f-protocol", "pop3")
    page.select_option("#f-security", "none")
    page.fill("#f-host", "127.0.0.1")
    page.fill("#f-port", str(dovecot.pop3_port))
    page.fill("#f-username", mailbox.user)
    page.fill("#f-password", mailbox.password)
    page.click("#test-connection")  # a normal submit: the form comes back with the result
    expect(page.locator(".test-result")).to_contain_text("Connection OK")
    expect(page.locator(".folder-count")).to_have_text("1")
    expect(page.locator("#f-host")).to_have_value("127.0.0.1")
    page.fill("#f-password", mailbox.password)  # write-only: typed again to save
    page.click("#save")
    page.wait_for_url("**/accounts/*")

    # the first poll: the page reloads itself until it is done (<noscript> refresh)
    expect(page.locator("#fetch-progress")).to_contain_text(
        "1 message fetched", timeout=FETCH_TIMEOUT_MS
    )
    assert delivered(serve.home, "ann")[0].endswith(b"fetched without javascript\n")

    # Fetch now: a plain form post, then the result after a reload
    mailbox.deliver(b"Subject: again\n\nsecond\n")
    page.get_by_role("button", name="Fetch now").click()
    deadline = time.monotonic() + FETCH_TIMEOUT_MS / 1000
    while len(delivered(serve.home, "ann")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let the run record its end
    page.reload()
    expect(page.locator("#fetch-progress")).to_contain_text("1 message fetched")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    expect(page.locator("#last-log")).to_contain_text("1 fetched")
    save_screenshot(page, "account-no-js")
