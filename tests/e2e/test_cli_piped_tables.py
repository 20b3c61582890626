"""Tables printed to a pipe keep whole values: `mailhaul account list | grep …` finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OWNER = "alexandra.konstantinopolskaya@a-rather-long-hosting-customer-domain.example.org"
HOST = "imap.mail-provider-with-a-very-long-host-name.example.net"


def mailhaul(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILHAUL_HOME": str(home), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "mailhaul", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_account_list_piped_prints_whole_addresses_and_hosts(tmp_path: Path) -> None:
    home = tmp_path / "mh"
    assert mailhaul(home, "init").returncode == 0
    added = mailhaul(
        home,
        "account", "add", "--owner", OWNER, "--protocol", "imap", "--host", HOST,
        "--username", "u", "--password-stdin",
        stdin="pw",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = mailhaul(home, "account", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("1 "))
    assert OWNER in line and f"{HOST}:993" in line
    assert "…" not in listed.stdout
