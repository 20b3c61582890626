"""`mailhaul settings show|set|unset` as an administrator types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MAILHAUL = [sys.executable, "-m", "mailhaul"]


def run(
    home: Path, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
    return subprocess.run(
        [*MAILHAUL, *args],
        env={**inherited, "MAILHAUL_HOME": str(home), "COLUMNS": "200", **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def settings_of(home: Path) -> dict[str, dict[str, object]]:
    shown = run(home, "settings", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    return {item["key"]: item for item in body["settings"]} | {
        "domains": {d["domain"]: d for d in body["delivery_domains"]}
    }


def test_an_admin_sets_shows_and_unsets_settings_from_the_command_line(tmp_path: Path):
    home = tmp_path / "mh"
    assert run(home, "init", "--admin-password-stdin", stdin="admin-password-1\n").returncode == 0
    assert settings_of(home)["poll.interval"]["source"] == "mailhaul.toml"

    assert run(home, "settings", "set", "poll.interval", "900").returncode == 0
    assert run(home, "settings", "set", "delivery.domains.b.test.method", "lmtp").returncode == 2
    done = run(home, "settings", "set", "delivery.domains.b.test",
               '{"method": "lmtp", "lmtp": "127.0.0.1:24"}')  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert run(home, "settings", "set", "delivery.domains.b.test.timeout", "30").returncode == 0
    shown = settings_of(home)
    assert (shown["poll.interval"]["value"], shown["poll.interval"]["source"]) == (900, "database")
    assert shown["domains"]["b.test"]["stored"] == {  # type: ignore[index]
        "method": "lmtp",
        "lmtp": "127.0.0.1:24",
        "timeout": 30.0,
    }
    table = run(home, "settings", "show").stdout
    assert "poll.interval" in table and "database" in table and "127.0.0.1:24" in table

    # a new account takes the stored default
    added = run(home, "account", "add", "--owner", "a@b.test", "--host", "mail.example.net",
                "--username", "u", "--password-stdin", "--json", stdin="pw\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["interval"] == 900

    bad = run(home, "settings", "set", "poll.interval", "0")
    assert bad.returncode == 2
    assert "poll.interval: must be positive" in bad.stderr
    mda = run(home, "settings", "set", "delivery.domains.b.test.method", "mda")
    assert mda.returncode == 2
    assert "must be one of maildir, lmtp, smtp" in mda.stderr
    env = run(home, "settings", "set", "poll.max_size", "5", env={"MAILHAUL_POLL_MAX_SIZE": "7"})
    assert env.returncode == 2
    assert "set by the environment" in env.stderr

    assert run(home, "settings", "unset", "poll.interval").returncode == 0
    assert run(home, "settings", "unset", "delivery.domains.b.test").returncode == 0
    shown = settings_of(home)
    assert shown["poll.interval"]["source"] == "mailhaul.toml"
    assert shown["domains"] == {}
    again = run(home, "settings", "unset", "poll.interval")
    assert "was not set" in again.stdout
