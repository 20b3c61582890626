"""Tables printed to a pipe keep whole values: `mailhaul account list | grep …` finds them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import filled_home
from support.filled_home import FilledHome

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


@pytest.fixture
def filled(tmp_path: Path, database_url: str) -> Iterator[FilledHome]:
    home = FilledHome(tmp_path / "filled", database_url)
    yield home
    home.close()


# Each list command, and the long values its table must print whole on one line.
LISTS = {
    ("account", "list"): [filled_home.OWNER, f"{filled_home.HOST}:993"],
    ("account", "show", "1"): [filled_home.OWNER, filled_home.ERROR],
    ("status",): [filled_home.OWNER, filled_home.ERROR, filled_home.WORKER],
    ("runs", "1"): [filled_home.ERROR],
    ("refused", "1"): [filled_home.REFUSAL],
    ("incidents", "--all"): [filled_home.OWNER, f"to {filled_home.OWNER}: sent"],
    ("quarantine", "list"): [filled_home.VIRUS, filled_home.SUBJECT, filled_home.OWNER],
    ("user", "list"): [filled_home.OWNER, filled_home.DOMAIN],
    ("user", "show", filled_home.OWNER): [filled_home.OWNER, filled_home.DOMAIN],
    ("user", "key", "list"): [filled_home.OWNER, "the nightly export cron job of the"],
    ("oauth", "provider", "list"): [filled_home.PROVIDER, filled_home.CLIENT_ID],
    ("oauth", "provider", "show", filled_home.PROVIDER): [filled_home.CLIENT_ID],
    ("settings", "show"): [filled_home.DOMAIN, "poll.interval"],
}
BOX_LINES = re.compile("[\u2500-\u257f]")  # rich's box drawing characters


def test_every_list_piped_keeps_whole_values_without_boxes(filled: FilledHome) -> None:
    for command, values in LISTS.items():
        out = filled.cli.ok(*command)
        assert not BOX_LINES.search(out), (command, out)
        lines = out.splitlines()
        for value in values:
            assert any(value in line for line in lines), f"{command}: {value!r} cut in:\n{out}"
        assert max(len(line) for line in lines) > 80, command  # wider than COLUMNS


def test_piped_tables_share_one_style(filled: FilledHome) -> None:
    """Upper-case headers, left-aligned, the same gap between columns, times alike."""
    users = filled.cli.ok("user", "list").splitlines()
    keys = filled.cli.ok("user", "key", "list").splitlines()
    providers = filled.cli.ok("oauth", "provider", "list").splitlines()
    quarantine = filled.cli.ok("quarantine", "list").splitlines()
    for header in (users[0], keys[0], providers[0], quarantine[0]):
        assert header.startswith("ID  "), header
        assert header.rstrip() == header.rstrip().upper()
    stamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    assert stamp.search(keys[1]) and stamp.search(quarantine[1])
    assert "68 KiB" in quarantine[1]  # sizes in human units
    assert "104857600 (100 MiB)" in filled.cli.ok("settings", "show")
    refused = filled.cli.ok("refused", "1").splitlines()
    assert refused[0].split() == ["FOLDER", "UID", "REFUSED", "REASON"]
    assert stamp.search(refused[1]) and refused[1].startswith("INBOX   42 ")
