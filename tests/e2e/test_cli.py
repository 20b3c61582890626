"""The CLI as a user types it, against a real Dovecot."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import Cli
from support.dovecot import Mailbox

MAILHAUL = [sys.executable, "-m", "mailhaul"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "mh", MAILHAUL_WEB_LISTEN="127.0.0.1:0")  # serve's metrics: a free port
    assert cli("init").returncode == 0
    return cli


def add_account(cli: Cli, mailbox: Mailbox, *extra: str) -> int:
    result = cli(
        "account", "add",
        "--owner", "i.petrov@mydomain.test",
        "--protocol", "pop3",
        "--host", "localhost",
        "--port", str(mailbox.ports.pop3s),
        "--security", "ssl",
        "--ca-file", str(mailbox.server.ca_path),
        "--username", mailbox.user,
        "--password-stdin",
        *extra,
        stdin=mailbox.password + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def test_init_is_idempotent_and_private(cli: Cli):
    again = cli("init")
    assert again.returncode == 0
    assert "created" not in again.stdout
    assert (cli.home / "keys").stat().st_mode & 0o777 == 0o600
    assert (cli.home / "mailhaul.db").stat().st_mode & 0o777 == 0o600


def test_add_list_fetch_log_runs_as_the_readme_shows(cli: Cli, mailbox: Mailbox):
    mailbox.deliver(b"Subject: hello\n\nfirst message\n")
    account_id = add_account(cli, mailbox, "--keep")
    listed = cli("account", "list", "--json")
    assert listed.returncode == 0
    [account] = json.loads(listed.stdout)
    assert account["id"] == account_id
    assert account["keep"] is True
    assert account["port"] == mailbox.ports.pop3s
    assert account["deliver_to"] == "i.petrov@mydomain.test"
    fetched = cli("fetch", str(account_id))
    assert fetched.returncode == 0, fetched.stderr
    assert "1 fetched" in fetched.stdout
    delivered = list((cli.home / "mail" / "mydomain.test" / "i.petrov" / "new").iterdir())
    assert len(delivered) == 1
    assert delivered[0].read_bytes().endswith(b"Subject: hello\n\nfirst message\n")
    log = cli("log", str(account_id))
    assert "1 fetched" in log.stdout
    history = json.loads(cli("runs", str(account_id), "--json").stdout)
    assert history[0]["result"] == "ok"
    assert history[0]["fetched"] == 1
    assert history[0]["started_at"].endswith("Z")  # ISO 8601 UTC, as scripts read it
    again = json.loads(cli("fetch", "--all", "--json").stdout)
    assert again[0]["fetched"] == 0  # keep: never delivered twice
    assert again[0]["run_id"] > history[0]["id"] and 0 <= again[0]["duration_seconds"] < 60
    for output in (listed, fetched, log):
        assert mailbox.password not in output.stdout + output.stderr


def test_password_on_the_command_line_is_refused(cli: Cli):
    result = cli(
        "account", "add", "--owner", "a@b.test", "--host", "h.test", "--username", "u",
        "--password", "hunter2",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--password-stdin" in result.stderr


def test_exit_codes_scripts_can_trust(cli: Cli, mailbox: Mailbox):
    assert cli("account", "show", "99").returncode == 3
    assert cli("fetch").returncode == 2
    bad = add_account(cli, mailbox, "--keep")
    cli("account", "edit", str(bad), "--password-stdin", stdin="wrong-password\n")
    failed = cli("fetch", str(bad))
    assert failed.returncode == 1
    assert "wrong-password" not in failed.stdout + failed.stderr
    invalid = cli(
        "account", "add", "--owner", "not-an-address", "--host", "h.test", "--username", "u",
        "--password-stdin", stdin="pw\n",
    )  # fmt: skip
    assert invalid.returncode == 2
    assert "owner" in invalid.stderr


def test_serve_polls_and_stops_cleanly_on_sigterm(cli: Cli, mailbox: Mailbox):
    account_id = add_account(cli, mailbox, "--interval", "10")
    mailbox.deliver(b"Subject: served\n\nby the scheduler\n")
    proc = subprocess.Popen(
        [*MAILHAUL, "serve"], env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        new = cli.home / "mail" / "mydomain.test" / "i.petrov" / "new"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (new.exists() and any(new.iterdir())):
            time.sleep(0.1)
        assert new.exists() and len(list(new.iterdir())) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    status = json.loads(cli("account", "show", str(account_id), "--json").stdout)
    assert status["last_result"] == "ok"
    assert mailbox.list_messages() == []


def test_key_rotation_keeps_accounts_working(cli: Cli, mailbox: Mailbox):
    account_id = add_account(cli, mailbox, "--keep")
    old_key = (cli.home / "keys").read_text().split()[0]
    rotated = cli("key", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "1 secret(s) re-encrypted" in rotated.stdout
    keys = (cli.home / "keys").read_text().splitlines()
    assert len(keys) == 1
    assert not keys[0].startswith(old_key)
    mailbox.deliver(b"Subject: after rotation\n\nstill works\n")
    assert cli("fetch", str(account_id)).returncode == 0


def test_edit_disable_enable_delete(cli: Cli, mailbox: Mailbox):
    account_id = add_account(cli, mailbox)
    edited = cli("account", "edit", str(account_id), "--keep", "--interval", "600", "--json")
    assert edited.returncode == 0, edited.stderr
    data = json.loads(edited.stdout)
    assert (data["keep"], data["interval"]) == (True, 600)
    assert "password" not in data and mailbox.password not in edited.stdout
    assert data["sign_in"] == "password"  # how it signs in, not the password itself
    assert cli("account", "disable", str(account_id)).returncode == 0
    assert json.loads(cli("account", "show", str(account_id), "--json").stdout)["active"] is False
    assert json.loads(cli("fetch", "--all", "--json").stdout) == []  # inactive: not polled
    assert cli("account", "enable", str(account_id)).returncode == 0
    assert cli("account", "delete", str(account_id), "--yes").returncode == 0
    assert json.loads(cli("account", "list", "--json").stdout) == []


def test_fetch_while_serve_runs_goes_through_the_service(cli: Cli, mailbox: Mailbox):
    account_id = add_account(cli, mailbox, "--interval", "3600")
    proc = subprocess.Popen(
        [*MAILHAUL, "serve"], env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30  # wait for its first (empty) poll
        while time.monotonic() < deadline:
            runs = json.loads(cli("runs", str(account_id), "--json").stdout or "[]")
            if runs and runs[0]["result"] == "ok":
                break
            time.sleep(0.2)
        mailbox.deliver(b"Subject: now\n\nplease\n")
        fetched = cli("fetch", str(account_id), "--json")
        assert fetched.returncode == 0, fetched.stderr
        [result] = json.loads(fetched.stdout)
        assert result["fetched"] == 1
        history = json.loads(cli("runs", str(account_id), "--json").stdout)
        # run by the service, not beside it, and recorded as asked for on the command line
        assert history[0]["trigger"] == "cli"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
