"""Bad input as a user types it: one clear line on stderr, the documented exit code, no
traceback, nothing stored. Exit codes (README): 2 bad command line, settings, input or a
database mailhaul cannot use; 3 no such account (or run, user, API key, OAuth provider,
quarantined message)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import cli as support_cli

MAILHAUL = [sys.executable, "-m", "mailhaul"]
ADD = ("account", "add", "--owner", "a@example.org", "--host", "mail.example.net")
ADD_TAIL = ("--username", "u", "--password-stdin")


class Cli(support_cli.Cli):
    """The CLI with the account these tests add."""

    def add(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self(*ADD, *extra, *ADD_TAIL, stdin="pw\n")

    def account_count(self) -> int:
        listed = self("account", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        return len(json.loads(listed.stdout))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "mh")
    made = cli("init", "--admin-password-stdin", stdin="admin-password-1\n")
    assert made.returncode == 0, made.stderr
    return cli


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The error line, after checking the exit code, the single line and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, len(lines)) == (code, 1), result.stderr
    assert lines[0].startswith("mailhaul: error: "), lines[0]
    for word in words:
        assert word in lines[0]
    return lines[0]


def test_a_valid_account_is_added_so_the_refusals_below_mean_something(cli: Cli):
    added = cli.add("--port", "65535", "--max-size", "1", "--interval", "10")
    assert added.returncode == 0, added.stderr
    shown = json.loads(cli("account", "show", added.stdout.strip(), "--json").stdout)
    assert (shown["port"], shown["max_size"], shown["interval"]) == (65535, 1, 10)


def test_max_size_takes_units_as_the_web_form_does(cli: Cli):
    added = cli.add("--max-size", "10M")
    assert added.returncode == 0, added.stderr
    shown = json.loads(cli("account", "show", added.stdout.strip(), "--json").stdout)
    assert shown["max_size"] == 10 * 1024 * 1024
    edited = cli("account", "edit", added.stdout.strip(), "--max-size", "512k", "--json")
    assert json.loads(edited.stdout)["max_size"] == 512 * 1024
    refused = cli("account", "edit", added.stdout.strip(), "--max-size", "10X")
    assert refused.returncode == 2
    assert "must be a number of bytes, or like 100M, 512K, 1G" in refused.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--port", "0"), ("port: 0 is not a TCP port (1-65535)",)),
        (("--port", "65536"), ("port: 65536",)),
        (("--port", "-1"), ("port: -1",)),
        (("--max-size", "0"), ("max_size: 0 is not a size limit", "no 0 for")),
        (("--max-size", "-5"), ("max_size: -5",)),
        (("--max-size", str(2**40 + 1)), ("max_size:", "1 TiB")),
        (("--interval", "0"), ("interval: must be at least 10 seconds",)),
    ],
)
def test_account_add_refuses_numbers_out_of_range(cli: Cli, args: tuple[str, ...], words):
    one_line_error(cli.add(*args), 2, *words)
    assert cli.account_count() == 0


def test_account_edit_refuses_numbers_out_of_range(cli: Cli):
    assert cli.add().returncode == 0
    one_line_error(cli("account", "edit", "1", "--port", "0"), 2, "port: 0")
    one_line_error(cli("account", "edit", "1", "--max-size", "0"), 2, "max_size: 0")
    shown = json.loads(cli("account", "show", "1", "--json").stdout)
    assert (shown["port"], shown["max_size"]) == (993, 104857600)  # IMAP, the default


def test_fetch_of_a_missing_account_exits_3_and_polls_nothing(cli: Cli):
    one_line_error(cli("fetch", "999"), 3, "account 999 does not exist")
    assert cli.add("--port", "1", "--security", "none", "--host", "127.0.0.1").returncode == 0
    one_line_error(cli("fetch", "1", "999"), 3, "account 999 does not exist")
    runs = cli("runs", "1", "--json")
    assert runs.returncode == 0 and json.loads(runs.stdout) == []  # 1 was not polled either
    polled = cli("fetch", "1")  # positive control: account 1 can be polled (and fails: port 1)
    assert polled.returncode == 1 and "account 1: error" in polled.stdout


MISSING = [
    (("account", "show", "99"), "account 99 does not exist"),
    (("runs", "99", "--json"), "account 99 does not exist"),
    (("log", "1", "--run", "99", "--json"), "account 1 has no run 99"),
    (("user", "show", "nobody@example.org", "--json"), "nobody@example.org does not exist"),
    (("user", "key", "revoke", "99"), "API key 99 does not exist"),
    (("oauth", "provider", "show", "nope", "--json"), "nope"),
    (("quarantine", "release", "99"), "no quarantined message 99"),
]


def test_every_missing_thing_exits_3_in_one_line(cli: Cli):
    assert cli.add().returncode == 0
    assert cli("log", "1", "--json").stdout.strip() == "null"  # positive control: it exists
    for command, words in MISSING:
        result = cli(*command)
        one_line_error(result, 3, words)
        assert result.stdout == "", command


@pytest.mark.parametrize("garbage", [b"garbage text\n", os.urandom(8192)])
def test_a_garbage_database_file_is_a_clear_error(cli: Cli, garbage: bytes):
    assert cli.add().returncode == 0
    for leftover in cli.home.glob("mailhaul.db-*"):
        leftover.unlink()
    cli.database.write_bytes(garbage)
    for args in (("account", "list"), ("fetch", "1"), ("db", "upgrade"), ("init",)):
        one_line_error(cli(*args), 2, str(cli.database), "is not a SQLite database")


def set_revision(database: Path, revision: str) -> None:
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_database_of_a_newer_mailhaul_is_refused_not_used(cli: Cli):
    assert cli.add().returncode == 0
    assert cli("account", "list").returncode == 0
    set_revision(cli.database, "9999")
    commands = [
        ("account", "list"),
        ("fetch", "1"),
        ("db", "current"),
        ("db", "upgrade"),
        ("init",),
        *[("account", "add", *ADD[2:], *ADD_TAIL)],
    ]
    for args in commands:
        one_line_error(cli(*args), 2, "schema revision 9999, newer than", "upgrade mailhaul")
    with contextlib.closing(sqlite3.connect(cli.database)) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (1,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


def test_serve_on_a_database_of_a_newer_mailhaul_exits_2(cli: Cli):
    set_revision(cli.database, "9999")
    cli.env["MAILHAUL_WEB_LISTEN"] = ""
    served = cli("serve")
    assert served.returncode == 2 and "Traceback" not in served.stderr
    assert "newer than this mailhaul knows" in served.stderr.strip().splitlines()[-1]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only even for root (the immutable attribute), else by its mode."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    chattr = shutil.which("chattr")
    made = chattr and subprocess.run([chattr, "+i", str(path)], check=False).returncode == 0
    if not made:
        pytest.skip("running as root without chattr +i: cannot make a file read-only")
    try:
        yield
    finally:
        subprocess.run([str(chattr), "-i", str(path)], check=True)


def test_a_read_only_database_is_a_clear_error(cli: Cli):
    assert cli.add().returncode == 0
    assert cli("account", "disable", "1").returncode == 0  # positive control: writable now
    assert cli("account", "enable", "1").returncode == 0
    with read_only(cli.database):
        assert cli("account", "list").returncode == 0  # reading still works
        for args in (("account", "disable", "1"), ("fetch", "1")):
            one_line_error(cli(*args), 2, str(cli.database), "is read-only")
        one_line_error(cli.add(), 2, "is read-only")
    assert cli.account_count() == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_log(cli: Cli, seconds: float) -> str:
    """Run `serve` for ``seconds`` after it says it is serving; its log."""
    proc = subprocess.Popen(
        [*MAILHAUL, "serve"], env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        log = ""
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        while time.monotonic() < deadline and "serving:" not in log and proc.poll() is None:
            log += (proc.stderr.read() or b"").decode()
            time.sleep(0.05)
        assert "serving:" in log, log
        time.sleep(seconds)
    finally:
        proc.terminate()
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), True)
        _, rest = proc.communicate(timeout=30)
    return log + rest.decode()


def test_an_empty_mailhaul_web_listen_switches_the_web_ui_off(cli: Cli):
    port = free_port()
    toml = cli.home / "mailhaul.toml"
    lines = toml.read_text().splitlines()
    at = [n for n, line in enumerate(lines) if re.match(r"#? *listen *=", line)]
    assert len(at) == 1
    lines[at[0]] = f'listen = "127.0.0.1:{port}"'
    toml.write_text("\n".join(lines) + "\n")
    cli.env["MAILHAUL_LOG_LEVEL"] = "info"
    assert f"http: listening on 127.0.0.1:{port}" in serve_log(cli, 1.0)  # the file's value
    cli.env["MAILHAUL_WEB_LISTEN"] = ""
    log = serve_log(cli, 2.0)
    assert "http: listening" not in log and "Traceback" not in log


def test_settings_set_takes_the_value_forms_its_help_shows(cli: Cli):
    shown = cli("settings", "set", "--help")
    assert shown.returncode == 0
    assert "110,995" in shown.stdout
    for key, typed, stored in [
        ("sources.allowed_ports", "110,995", "110,995"),
        ("sources.allowed_ports", '"110,995"', "110,995"),  # quoted as in mailhaul.toml
        ("poll.interval", "600", 600),
        ("sources.allow_private", "true", True),
    ]:
        result = cli("settings", "set", key, typed)
        assert result.returncode == 0, result.stderr
        settings = json.loads(cli("settings", "show", "--json").stdout)["settings"]
        assert {item["key"]: item["value"] for item in settings}[key] == stored
    one_line_error(cli("settings", "set", "poll.interval", "soon"), 2, "poll.interval")
