"""Live progress of a fetch the running service makes: the account page in Chromium shows
the messages and bytes as they come, and `mailhaul fetch` on a terminal draws a bar from
the same counts, for a fetch of several batches (over 8 MiB: four 3 MiB messages among
twelve) made slow by a slow local delivery (an MDA that takes a moment per message)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from dataclasses import astuple
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from support import cli as support_cli
from support.browser import save_screenshot
from support.dovecot import DovecotServer, Mailbox
from support.processes import ServeProcess

ADMIN_PASSWORD = "admin-password-1"
MESSAGES = 12
SLOW_MDA = """\
import pathlib, sys, time, uuid
time.sleep(0.4)
out = pathlib.Path(sys.argv[1])
data = sys.stdin.buffer.read()
(out / (uuid.uuid4().hex + ".eml")).write_bytes(data)
"""
RUNNING = re.compile(r"Fetching: (\d+) messages? \(([^)]+)\) so far")


@pytest.fixture
def cli(tmp_path: Path, dovecot: DovecotServer) -> support_cli.Cli:
    """A home delivering through the slow MDA into ``tmp_path/out``, with an admin."""
    home = tmp_path / "mh"
    home.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    mda = tmp_path / "slow_mda.py"
    mda.write_text(SLOW_MDA)
    ports = ",".join(str(p) for p in (110, 143, 993, 995, *astuple(dovecot.ports)))
    (home / "mailhaul.toml").write_text(
        f'[sources]\nallow_private = true\nallowed_ports = "{ports}"\n'
        f'[delivery]\nmethod = "mda"\nmda = "{sys.executable} {mda} {out}"\n'
    )
    cli = support_cli.Cli(home)
    cli.ok("init", "--admin-password-stdin", stdin=ADMIN_PASSWORD + "\n")
    return cli


def add_account(cli: support_cli.Cli, mailbox: Mailbox, dovecot: DovecotServer) -> int:
    """An IMAP account on the test Dovecot (polled once at once by the service: empty)."""
    added = cli.ok(
        "account", "add", "--owner", "u@local.test", "--host", "localhost",
        "--port", str(dovecot.imaps_port), "--security", "ssl",
        "--ca-file", str(dovecot.ca_path), "--username", mailbox.user,
        "--password-stdin", "--interval", "3600",
        stdin=mailbox.password + "\n",
    )  # fmt: skip
    return int(added)


def filled_account(cli: support_cli.Cli, mailbox: Mailbox, dovecot: DovecotServer) -> int:
    """An account the running service has polled once (empty), then mail for it to fetch."""
    account_id = add_account(cli, mailbox, dovecot)
    first_run_done(cli, account_id)
    fill(mailbox)
    return account_id


def runs(cli: support_cli.Cli, account_id: int) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(cli.ok("runs", str(account_id), "--json"))
    return result


def first_run_done(cli: support_cli.Cli, account_id: int) -> None:
    """Wait for the service's first (empty) run of a new account."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(run["result"] != "running" for run in runs(cli, account_id)):
            return
        time.sleep(0.2)
    raise AssertionError("the service did not poll the new account")


BIG = 3 * 1024 * 1024  # four of these make the fetch more than one batch (8 MiB each)


def fill(mailbox: Mailbox) -> None:
    for n in range(MESSAGES):
        body = b"x" * 76 + b"\n"
        count = BIG // len(body) if n % 3 == 2 else 1
        mailbox.deliver(f"Subject: m{n}\n\n".encode() + body * count)


def sign_in(page: Page, serve: ServeProcess) -> None:
    page.goto(f"{serve.url}/login")
    page.fill("#f-login", "admin")
    page.fill("#f-password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{serve.url}/accounts")


def test_the_account_page_shows_messages_and_bytes_as_they_come(
    cli: support_cli.Cli, mailbox: Mailbox, dovecot: DovecotServer, page: Page
):
    with ServeProcess(cli.home) as serve:
        account_id = filled_account(cli, mailbox, dovecot)
        sign_in(page, serve)
        page.goto(f"{serve.url}/accounts/{account_id}")
        page.get_by_role("button", name="Fetch now").click()
        progress = page.locator("#fetch-progress")
        expect(progress).to_contain_text(re.compile(RUNNING.pattern), timeout=30_000)
        seen = RUNNING.search(progress.inner_text())
        assert seen is not None
        assert 1 <= int(seen.group(1)) < MESSAGES  # part of the way, as it happens
        assert re.fullmatch(r"[\d.]+ (B|KiB|MiB)", seen.group(2)), seen.group(2)
        save_screenshot(page, "account-fetch-progress")
        # the counts grow without a reload, then the result replaces them
        page.evaluate("window.stillTheSamePage = true")
        expect(progress).to_contain_text(f"{MESSAGES} messages fetched", timeout=60_000)
        assert page.evaluate("window.stillTheSamePage") is True
        newest = runs(cli, account_id)[0]
        assert isinstance(newest["bytes"], int) and newest["bytes"] > 8 << 20  # > one batch


def test_fetch_through_the_service_draws_a_progress_bar_on_a_terminal(
    cli: support_cli.Cli, mailbox: Mailbox, dovecot: DovecotServer
):
    with ServeProcess(cli.home):
        account_id = filled_account(cli, mailbox, dovecot)
        screen, code = fetch_on_a_terminal(cli, account_id)
    assert code == 0, screen
    frames = re.findall(rf"account {account_id}\b.*?(\d+) messages, ([\d.]+ \w+)", screen)
    counts = {int(count) for count, _ in frames}
    assert any(1 <= count < MESSAGES for count in counts), screen  # drawn while it ran
    assert f"account {account_id}: ok, {MESSAGES} fetched" in screen
    # the summary is the last thing said: no bar drawn after it
    assert not re.search(r"\d+ messages, ", screen.rsplit(f"account {account_id}: ok", 1)[1])


def test_fetch_through_the_service_draws_nothing_when_piped(
    cli: support_cli.Cli, mailbox: Mailbox, dovecot: DovecotServer
):
    """Positive control's counterpart: off a terminal the output is the summary only."""
    with ServeProcess(cli.home):
        account_id = filled_account(cli, mailbox, dovecot)
        result = cli("fetch", str(account_id))
    assert result.returncode == 0, result.stderr
    assert "messages, " not in result.stderr + result.stdout
    assert f"account {account_id}: ok, {MESSAGES} fetched" in result.stdout


def fetch_on_a_terminal(cli: support_cli.Cli, account_id: int) -> tuple[str, int]:
    """`mailhaul fetch ID` with stdout and stderr on a pseudo-terminal: what it drew, and
    its exit code."""
    leader, follower = pty.openpty()
    env = {**cli.env, "TERM": "xterm", "COLUMNS": "120", "LINES": "30"}
    proc = subprocess.Popen(
        [*support_cli.MAILHAUL, "fetch", str(account_id)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process has ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    code = proc.wait(timeout=30)
    text = b"".join(chunks).decode(errors="replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text), code
