"""`mailhaul init` and `mailhaul user …` as an administrator types them."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mailhaul.bootstrap import App
from mailhaul.settings import load_settings
from support import cli as support_cli
from support.processes import ServeProcess

MAILHAUL = [sys.executable, "-m", "mailhaul"]
HASH = re.compile(r"\$argon2|password_hash")


class Cli(support_cli.Cli):
    """The CLI, its outputs checked for password hashes."""

    def ok(self, *args: str, stdin: str = "") -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert not HASH.search(result.stdout + result.stderr)
        return result.stdout

    def signs_in(self, login: str, password: str) -> bool:
        app = App(load_settings(self.home, environ={}))
        try:
            return app.users.authenticate(login, password) is not None
        finally:
            app.db.dispose()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "mh")


def generated_password(output: str) -> str:
    """The password printed once: ``password: X (shown only now)`` (init) or
    ``password for LOGIN (shown only now): X`` (user add)."""
    match = re.search(r"password:\s+(\S+)\s+\(shown only now\)", output) or re.search(
        r"\(shown only now\):\s+(\S+)", output
    )
    assert match, output
    return match.group(1)


def test_init_makes_the_first_admin_once_with_a_password_printed_once(cli: Cli):
    first = cli.ok("init")
    assert "web admin:     admin" in first
    password = generated_password(first)
    assert len(password) >= 16
    assert cli.signs_in("admin", password)

    again = cli.ok("init")
    assert password not in again
    assert "shown only now" not in again
    users = json.loads(cli.ok("user", "list", "--json"))
    assert [(u["login"], u["role"]) for u in users] == [("admin", "admin")]
    assert cli.signs_in("admin", password)


def test_init_takes_the_admin_password_from_stdin_and_never_prints_it(cli: Cli):
    output = cli.ok(
        "init", "--admin-password-stdin", "--admin-login", "root", stdin="s3cret-enough\n"
    )
    assert "s3cret-enough" not in output
    assert "shown only now" not in output
    assert cli.signs_in("root", "s3cret-enough")

    again = cli.ok("init", "--admin-password-stdin", stdin="another-password\n")
    assert "the admin password was not changed" in again
    assert cli.signs_in("root", "s3cret-enough")
    assert not cli.signs_in("root", "another-password")


def test_init_refuses_a_short_admin_password(cli: Cli):
    result = cli("init", "--admin-password-stdin", stdin="short\n")
    assert result.returncode == 2
    assert "password" in result.stderr
    assert "short" not in result.stdout


def test_users_are_added_listed_edited_and_deleted_with_script_friendly_exit_codes(cli: Cli):
    cli.ok("init", "--admin-password-stdin", stdin="admin-password\n")
    added = cli.ok("user", "add", "i.petrov@mydomain.test")
    user_id = int(added.splitlines()[0])
    password = generated_password(added)
    assert cli.signs_in("i.petrov@mydomain.test", password)

    boss = json.loads(
        cli.ok(
            "user", "add", "boss@mydomain.test", "--role", "domain_admin",
            "--domain", "mydomain.test", "--password-stdin", "--json",
            stdin="boss-password\n",
        )
    )  # fmt: skip
    assert (boss["role"], boss["domains"]) == ("domain_admin", ["mydomain.test"])
    assert "password" not in boss

    listed = json.loads(cli.ok("user", "list", "--json"))
    assert {u["login"] for u in listed} == {"admin", "i.petrov@mydomain.test", "boss@mydomain.test"}
    shown = json.loads(cli.ok("user", "show", str(user_id), "--json"))
    assert shown["login"] == "i.petrov@mydomain.test"
    assert "i.petrov@mydomain.test" in cli.ok("user", "list")

    edited = json.loads(cli.ok("user", "edit", "i.petrov@mydomain.test", "--disable", "--json"))
    assert edited["active"] is False
    assert not cli.signs_in("i.petrov@mydomain.test", password)
    cli.ok("user", "edit", "i.petrov@mydomain.test", "--enable", "--password-stdin",
           stdin="a-new-password\n")  # fmt: skip
    assert cli.signs_in("i.petrov@mydomain.test", "a-new-password")

    assert cli("user", "add", "i.petrov@mydomain.test").returncode == 2  # exists
    assert cli("user", "add", "x@mydomain.test", "--role", "domain_admin").returncode == 2
    assert cli("user", "add", "not an address").returncode == 2
    assert cli("user", "show", "nobody@mydomain.test").returncode == 3
    assert cli("user", "delete", "999").returncode == 3
    last_admin = cli("user", "delete", "admin")
    assert last_admin.returncode == 2
    assert "last admin" in last_admin.stderr
    cli.ok("user", "delete", "i.petrov@mydomain.test")
    assert cli("user", "show", str(user_id)).returncode == 3


def test_user_add_json_shows_a_generated_password_once_and_never_a_hash(cli: Cli):
    cli.ok("init", "--admin-password-stdin", stdin="admin-password\n")
    added = json.loads(cli.ok("user", "add", "a@mydomain.test", "--json"))
    assert cli.signs_in("a@mydomain.test", added["password"])
    shown = cli.ok("user", "show", "a@mydomain.test", "--json")
    assert added["password"] not in shown
    assert "password" not in json.loads(shown)


def call_api(url: str, key: str, method: str = "GET") -> int:
    request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1)
        url, method=method, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def test_an_api_key_works_until_revoked(cli: Cli):
    cli.ok("init", "--admin-password-stdin", stdin="admin-password\n")
    created = json.loads(cli.ok("user", "key", "create", "admin", "--name", "cron", "--json"))
    key = created["key"]
    assert key.startswith("mh_")
    listed = cli.ok("user", "key", "list", "--json")
    assert key not in listed
    assert [k["name"] for k in json.loads(listed)] == ["cron"]

    serve = ServeProcess(cli.home).start()
    try:
        assert call_api(f"{serve.url}/api/v1/me", key) == 200
        assert call_api(f"{serve.url}/api/v1/poll", key, "POST") == 202
        cli.ok("user", "key", "revoke", str(created["id"]))
        assert call_api(f"{serve.url}/api/v1/me", key) == 401
    finally:
        assert serve.stop() == 0, serve.log
    assert key not in serve.log
    assert cli("user", "key", "revoke", str(created["id"])).returncode == 3
