"""Connecting an OAuth2 account in a real headless Chromium against a real `mailhaul serve`:
Connect → the test authorization server's consent page → Approve → back on the account's
page, connected → Fetch now delivers (the mail server checks the token at the authorization
server). Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from support.browser import save_screenshot
from support.cli import Cli
from support.oauth_server import OAuthTestServer
from support.processes import ServeProcess
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer

USER = "me@example.net"
ADMIN_PASSWORD = "admin-password-1"
TIMEOUT_MS = 30_000


def mailhaul(home: Path, *args: str, stdin: str = "") -> str:
    """Run the CLI on ``home``; its stdout (the test fails on a non-zero exit)."""
    return Cli(home).ok(*args, stdin=stdin)


@pytest.fixture
def idp() -> Iterator[OAuthTestServer]:
    with OAuthTestServer(consent_user=USER) as server:
        yield server


@pytest.fixture
def serve_home(tmp_path: Path) -> Path:
    home = tmp_path / "mh"
    home.mkdir()
    mailhaul(home, "init", "--admin-password-stdin", stdin=ADMIN_PASSWORD + "\n")
    return home


def test_connect_consent_approve_then_fetch_now_delivers(
    serve: ServeProcess, page: Page, idp: OAuthTestServer
) -> None:
    mail = ScriptedImapServer(
        ImapScript(
            username=USER,
            oauth=("XOAUTH2",),
            sasl_ir=True,
            folders={"INBOX": Mailbox(3, [Message(1, b"Subject: hello\r\n\r\nvia OAuth2\r\n")])},
            token_check=lambda token: idp.active_token(token) is not None,
        )
    )
    mail.start()
    try:
        idp.add_client("lab", redirect_uri=f"{serve.url}/oauth/callback")
        ends = idp.endpoints()
        mailhaul(
            serve.home, "oauth", "provider", "add", "lab",
            "--authorize-url", ends["authorize_url"], "--token-url", ends["token_url"],
            "--scope", "mail offline_access", "--client-id", "lab",
        )  # fmt: skip
        account_id = mailhaul(
            serve.home, "account", "add", "--owner", "ann@local.test", "--protocol", "imap",
            "--host", "127.0.0.1", "--port", str(mail.port), "--security", "none",
            "--username", USER, "--auth", "oauth2", "--oauth-provider", "lab",
        ).strip()  # fmt: skip

        page.goto(f"{serve.url}/login")
        page.fill("#f-login", "admin")
        page.fill("#f-password", ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{serve.url}/accounts/{account_id}")
        expect(page.locator("#sign-in")).to_contain_text("sign-in needed")
        save_screenshot(page, "oauth-account-sign-in-needed")

        page.get_by_role("button", name="Connect", exact=True).click()
        page.wait_for_url(f"{idp.base}/authorize?**")
        expect(page.get_by_role("heading")).to_contain_text("Allow lab to read your mail?")
        save_screenshot(page, "oauth-consent")
        page.get_by_role("button", name="Approve").click()

        page.wait_for_url(f"{serve.url}/accounts/{account_id}")
        expect(page.locator(".flash-success")).to_contain_text("Connected")
        expect(page.locator("#sign-in")).to_contain_text("connected")
        save_screenshot(page, "oauth-account-connected")

        # Connecting makes the account due: the scheduler may fetch the message before the
        # click does, so the click's run finds one message or none, and one is delivered.
        page.get_by_role("button", name="Fetch now").click()
        expect(page.locator("#fetch-progress")).to_contain_text(
            re.compile(r"Fetch finished: [01] messages? fetched"), timeout=TIMEOUT_MS
        )
        delivered = list((serve.home / "mail" / "local.test" / "ann" / "new").iterdir())
        assert len(delivered) == 1 and b"via OAuth2" in delivered[0].read_bytes()
        runs = json.loads(mailhaul(serve.home, "runs", account_id, "--json"))
        assert sum(run["fetched"] for run in runs) == 1
        # one sign-in per run (the scheduler's, if it came first, and the click's), besides
        # the push watcher's (EXAMINE, then IDLE), with the access token a run stored
        logins = [login.user for login in mail.oauth_logins]
        watching = sum(command.upper().startswith("EXAMINE") for command in mail.commands)
        assert set(logins) == {USER} and 1 <= len(logins) - watching <= len(runs)
        shown = json.loads(mailhaul(serve.home, "account", "show", account_id, "--json"))
        assert shown["sign_in_problem"] is None
    finally:
        mail.stop()
