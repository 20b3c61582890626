"""The CLI never leaves a user waiting for nothing: a paused or disabled account is answered
at once while `serve` runs (exit 5), a busy one exits 4, runs a person asked for through the
service are recorded as theirs (`cli`), and `serve` on a home nobody initialised says what to
run."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from support import cli as support_cli
from support.processes import ServeProcess

PAUSE = "5 login failures in a row"


class Cli(support_cli.Cli):
    """The CLI with an account on a closed port, and its rows straight in the database."""

    def add(self, *extra: str) -> int:
        """An account on a closed local port (its polls fail at once); its id."""
        added = self(
            "account", "add", "--owner", "u@example.org", "--host", "127.0.0.1",
            "--port", "9", "--security", "none", "--username", "u", "--password-stdin",
            *extra,
            stdin="pw\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        return int(added.stdout)

    def set(self, account_id: int, **values: object) -> None:
        """Columns of an account row, straight in the database."""
        columns = ", ".join(f"{name} = ?" for name in values)
        with contextlib.closing(sqlite3.connect(self.database)) as conn, conn:
            conn.execute(
                f"UPDATE accounts SET {columns} WHERE id = ?",  # noqa: S608 (names from the test)
                [*values.values(), account_id],
            )

    def triggers(self, account_id: int) -> list[str]:
        runs = self("runs", str(account_id), "--json")
        assert runs.returncode == 0, runs.stderr
        return [run["trigger"] for run in json.loads(runs.stdout)]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "mh", MAILHAUL_WEB_LISTEN="")
    made = cli("init")
    assert made.returncode == 0, made.stderr
    return cli


def timed(cli: Cli, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = cli(*args)
    return result, time.monotonic() - started


def test_fetch_through_serve_answers_a_paused_or_disabled_account_at_once(cli: Cli):
    paused = cli.add()
    disabled = cli.add("--inactive")
    cli.set(paused, paused_reason=PAUSE, state="login failed", consecutive_failures=5)
    with ServeProcess(cli.home):
        result, took = timed(cli, "fetch", str(paused))
        assert result.returncode == 5, result.stderr + result.stdout
        assert took < 30
        assert f"paused ({PAUSE}): resume or enable it to fetch" in result.stdout
        assert "within" not in result.stdout + result.stderr

        result, took = timed(cli, "fetch", str(disabled))
        assert result.returncode == 5, result.stderr + result.stdout
        assert took < 30
        assert "disabled: enable it to fetch" in result.stdout

        result, took = timed(cli, "fetch", "--all", "--json")
        assert result.returncode == 5, result.stderr + result.stdout
        assert took < 30
        [summary] = json.loads(result.stdout)  # the disabled one is not among --all
        assert (summary["account_id"], summary["result"]) == (paused, "paused")
    assert cli.triggers(paused) == [] and cli.triggers(disabled) == []


def test_paused_account_resumes_from_the_cli_and_every_view_says_paused(cli: Cli):
    account = cli.add()
    cli.set(account, paused_reason=PAUSE, state="login failed", consecutive_failures=5)
    shown = cli("account", "show", str(account))
    assert shown.returncode == 0, shown.stderr
    assert "login failed" not in shown.stdout
    assert f"paused: {PAUSE}" in shown.stdout and "not while paused" in shown.stdout
    listed = cli("account", "list")
    assert f"paused: {PAUSE}" in listed.stdout
    assert json.loads(cli("account", "show", str(account), "--json").stdout)["state"] == "paused"
    resumed = cli("account", "resume", str(account))
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(cli("account", "show", str(account), "--json").stdout)
    assert (data["paused_reason"], data["consecutive_failures"]) == (None, 0)
    assert cli("account", "resume", "99").returncode == 3


def test_fetch_of_an_account_another_process_polls_exits_4(cli: Cli):
    account = cli.add()
    cli.set(account, lease_owner="elsewhere.example:4242:x", lease_expires=time.time() + 600)
    for args in (("fetch", str(account)), ("fetch", "--here", str(account))):
        result = cli(*args)
        assert result.returncode == 4, result.stderr + result.stdout
        assert "being polled by elsewhere.example:4242:x" in result.stdout


def test_fetch_through_serve_records_the_cli_as_trigger(cli: Cli):
    account = cli.add()
    cli.set(account, next_poll_at=time.time() + 3600)  # only the fetch starts a run
    with ServeProcess(cli.home):
        result = cli("fetch", str(account), "--json")
    assert result.returncode == 1, result.stderr  # port 9: the run fails, but it ran
    [summary] = json.loads(result.stdout)
    assert summary["run_id"] is not None
    assert cli.triggers(account) == ["cli"]


def test_fetch_here_records_the_cli_as_trigger(cli: Cli):
    account = cli.add()
    assert cli("fetch", str(account)).returncode == 1
    assert cli.triggers(account) == ["cli"]


def test_serve_on_a_home_nobody_initialised_names_the_command_to_run(tmp_path: Path):
    cli = Cli(tmp_path / "fresh")
    for command in ("serve", "worker"):
        result = cli(command)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert "run `mailhaul init` first" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "fresh" / "mailhaul.db").exists()
