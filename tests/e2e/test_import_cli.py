"""`mailhaul import …` and `mailhaul export` as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MAILHAUL = [sys.executable, "-m", "mailhaul"]
PASSWORDS = ("S3cr3t-one", "S3cr3t-two", "S3cr3t-multi")
RC = f"""\
# migrated from the old gateway
set daemon 600
defaults proto pop3 keep
poll pop.example.net with proto pop3
    user "petrov" there with password "{PASSWORDS[0]}" is petrov@mydomain.test here ssl
poll imap.example.net proto imap user anna pass "{PASSWORDS[1]}" is anna here ssl
    folder INBOX Archive
    mda "/usr/bin/procmail"
poll mx.example.net proto pop3 user box pass "{PASSWORDS[2]}" is a b here
"""


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILHAUL_HOME": str(home)}
    return subprocess.run(
        [*MAILHAUL, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "mh"
    assert run(home, "init").returncode == 0
    return home


def no_password_in(*results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        for secret in PASSWORDS:
            assert secret not in result.stdout and secret not in result.stderr


def test_fetchmailrc_dry_run_then_import_then_reimport(home: Path, tmp_path: Path):
    rc = tmp_path / "fetchmailrc"
    rc.write_text(RC)
    dry = run(home, "import", "fetchmailrc", str(rc), "--local-domain", "mydomain.test",
              "--dry-run")  # fmt: skip
    assert dry.returncode == 1, dry.stderr  # the multidrop entry is skipped
    assert "would create" in dry.stdout and "dry run: nothing was written" in dry.stdout
    assert f"{rc}:9: multidrop" in dry.stdout
    assert f"{rc}:8: `mda` is not supported" in dry.stdout
    assert json.loads(run(home, "account", "list", "--json").stdout) == []

    real = run(home, "import", "fetchmailrc", str(rc), "--local-domain", "mydomain.test",
               "--json")  # fmt: skip
    assert real.returncode == 1
    summary = json.loads(real.stdout)
    assert (summary["created"], summary["skipped"]) == (2, 1)
    listed = run(home, "account", "list", "--json")
    accounts = {a["username"]: a for a in json.loads(listed.stdout)}
    assert accounts["petrov"]["keep"] is True and accounts["petrov"]["interval"] == 600
    assert accounts["anna"]["folders"] == ["INBOX", "Archive"]
    assert accounts["anna"]["deliver_to"] == "anna@mydomain.test"

    again = run(home, "import", "fetchmailrc", str(rc), "--local-domain", "mydomain.test")
    assert "0 created, 0 updated, 2 unchanged, 1 skipped" in again.stdout
    assert len(json.loads(run(home, "account", "list", "--json").stdout)) == 2
    no_password_in(dry, real, listed, again)


def test_unparseable_file_exits_2_with_file_and_line(home: Path, tmp_path: Path):
    rc = tmp_path / "rc"
    rc.write_text('poll a.example proto pop3\n  user x pass "never closed\n')
    result = run(home, "import", "fetchmailrc", str(rc))
    assert result.returncode == 2
    assert f"{rc}:2: unterminated quoted string" in result.stderr
    assert run(home, "import", "rules", str(tmp_path / "missing")).returncode == 2


def test_export_with_passwords_and_import_into_a_fresh_home(home: Path, tmp_path: Path):
    rules = tmp_path / "rules"
    rules.write_text(f"pop.example.net:pop3 petrov {PASSWORDS[0]} petrov@mydomain.test keep ssl\n")
    assert run(home, "import", "rules", str(rules)).returncode == 0
    out = tmp_path / "export.json"
    exported = run(home, "export", "--json", "--with-passwords", "--output", str(out),
                   stdin="pass phrase\n")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert PASSWORDS[0] not in out.read_text()
    plain = run(home, "export")
    assert json.loads(plain.stdout)["accounts"][0]["username"] == "petrov"

    fresh = tmp_path / "fresh"
    assert run(fresh, "init").returncode == 0
    wrong = run(fresh, "import", "json", str(out), stdin="nope\n")
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    moved = run(fresh, "import", "json", str(out), stdin="pass phrase\n")
    assert moved.returncode == 0, moved.stderr
    [account] = json.loads(run(fresh, "account", "list", "--json").stdout)
    assert (account["username"], account["keep"], account["active"]) == ("petrov", True, True)
    no_password_in(exported, plain, wrong, moved)
