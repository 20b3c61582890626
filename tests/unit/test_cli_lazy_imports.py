"""The command line imports only what the command in hand needs: a cron job calling
`mailhaul fetch` or a panel calling `mailhaul account list --json` does not pay for the web
stack, the importers, password hashing or tables. (How long that takes is bench/'s business;
this checks which modules are loaded.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mailhaul import __version__
from mailhaul.cli import COMMANDS, app

NEVER = ("typer", "pydantic")  # not dependencies of the command line at all
HEAVY = ("sqlalchemy", "rich", "argon2", "mailhaul.importers", "mailhaul.web", "alembic")
OAUTH = ("authlib", "httpx2")  # only where an account signs in with OAuth2


def modules_imported(home: Path, *args: str, stdin: str = "") -> tuple[set[str], str]:
    """The modules `python -m mailhaul ARGS` imports (from `-X importtime`), and its stdout."""
    env = {**os.environ, "MAILHAUL_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mailhaul", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = result.stderr.splitlines()
    modules = {m[1] for line in lines if (m := re.match(r"import time:.*\|\s*([\w.]+)$", line))}
    assert modules, result.stderr
    return modules, result.stdout


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_version_loads_no_application_code(tmp_path: Path):
    modules, out = modules_imported(tmp_path, "--version")
    assert out == f"mailhaul {__version__}\n"
    for package in (*NEVER, *HEAVY, *OAUTH, "mailhaul.bootstrap", "mailhaul.settings"):
        assert not loaded(modules, package), package


def test_help_lists_the_commands_without_loading_them(tmp_path: Path):
    modules, out = modules_imported(tmp_path, "--help")
    for name in COMMANDS:
        assert re.search(rf"^  {name} ", out, re.MULTILINE), name
    assert not loaded(modules, "sqlalchemy")
    cli_modules = {m for m in modules if m.startswith("mailhaul.cli.")}
    assert cli_modules == {"mailhaul.cli.base", "mailhaul.cli.context"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with one IMAP account on a closed port (its polls fail at once)."""
    home = tmp_path_factory.mktemp("cli") / "mh"
    modules_imported(home, "init", "--admin-password-stdin", stdin="admin-password-1\n")
    _, out = modules_imported(
        home,
        *("account", "add", "--owner", "a@b.test", "--protocol", "imap", "--security", "none"),
        *("--host", "127.0.0.1", "--port", "1", "--username", "u", "--password-stdin"),
        stdin="pw\n",
    )
    assert out.strip() == "1"
    return home


def test_fetch_loads_neither_importers_nor_password_hashing_nor_tables(home: Path):
    modules, out = modules_imported(home, "fetch", "1")
    assert out.startswith("account 1: error: nothing is listening")  # it did poll
    assert loaded(modules, "mailhaul.services.polling")
    for package in (
        *NEVER,
        *OAUTH,
        "rich",
        "argon2",
        "mailhaul.importers",
        "mailhaul.web",
        "alembic",
    ):
        assert not loaded(modules, package), package
    assert not loaded(modules, "mailhaul.services.users")
    assert not loaded(modules, "mailhaul.services.importing")


def test_account_list_json_loads_no_tables(home: Path):
    modules, out = modules_imported(home, "account", "list", "--json")
    assert '"id": 1' in out
    for package in (*NEVER, *OAUTH, "rich", "argon2", "mailhaul.importers", "mailhaul.web"):
        assert not loaded(modules, package), package


def test_the_short_help_listed_is_each_commands_own():
    ctx = click.Context(app)
    for name, (_, short_help) in COMMANDS.items():
        command = app.get_command(ctx, name)
        assert command is not None, name
        assert command.get_short_help_str(limit=1000) == short_help, name
