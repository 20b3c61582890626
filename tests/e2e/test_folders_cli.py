"""Folders from the command line, as a user types it, against a real Dovecot: every folder
with include/exclude, a map and a prefix; `account folders` lists the server's folders with
their special use and where each one's mail lands; edits replace or empty the lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import Cli
from support.dovecot import DovecotServer, Mailbox


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "mh", MAILHAUL_WEB_LISTEN="")
    cli.ok("init")
    return cli


@pytest.fixture
def source(dovecot: DovecotServer) -> Mailbox:
    mailbox = dovecot.new_mailbox()
    for name in ("Sent Items", "Spam", "Archive", "Lists/python"):
        mailbox.create_folder(name)
    return mailbox


def add(cli: Cli, source: Mailbox, *extra: str) -> int:
    added = cli(
        "account", "add", "--owner", "u@example.org", "--host", "localhost",
        "--port", str(source.ports.imaps), "--ca-file", str(source.server.ca_path),
        "--username", source.user, "--password-stdin", *extra,
        stdin=source.password + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return int(added.stdout)


def folders(cli: Cli, account_id: int) -> dict[str, dict[str, object]]:
    rows = json.loads(cli.ok("account", "folders", str(account_id), "--json"))
    return {row["folder"]: row for row in rows}


def test_every_folder_with_rules_and_what_becomes_of_each(cli: Cli, source: Mailbox):
    account_id = add(
        cli, source, "--all-folders", "--exclude", "Archive", "--include", "Spam",
        "--map", "Sent Items=Sent/old", "--into", "Fetched",
    )  # fmt: skip
    shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert shown["folder_rules"]["map"] == [["Sent Items", "Sent/old"]]
    seen = folders(cli, account_id)
    assert seen["INBOX"]["lands_in"] == "Fetched"
    assert seen["Sent Items"]["special_use"] == "\\sent"
    assert seen["Sent Items"]["lands_in"] == "Sent/old"  # the map wins over the special use
    assert seen["Spam"]["polled"] is True and seen["Spam"]["lands_in"] == "Junk"
    assert seen["Archive"]["polled"] is False and seen["Archive"]["lands_in"] is None
    assert seen["Lists/python"]["lands_in"] == "Fetched/Lists/python"
    table = cli.ok("account", "folders", str(account_id))
    assert "Sent/old" in table and "\\sent" in table

    # an edit replaces a list, '' empties it; what is not named stays
    cli.ok("account", "edit", str(account_id), "--map", "", "--into", "", "--exclude", "")
    seen = folders(cli, account_id)
    assert seen["INBOX"]["lands_in"] == "(mailbox)"
    assert seen["Sent Items"]["lands_in"] == "Sent"  # now by its special use
    assert seen["Archive"]["lands_in"] == "Archive"
    assert seen["Spam"]["polled"] is True  # --include kept


def test_a_fixed_list_and_bad_rules(cli: Cli, source: Mailbox):
    account_id = add(cli, source, "--folder", "INBOX", "--folder", "Lists/python")
    seen = folders(cli, account_id)
    assert seen["Lists/python"]["polled"] is True
    assert seen["Sent Items"]["polled"] is False
    bad = cli("account", "edit", str(account_id), "--map", "Sent Items")
    assert bad.returncode == 2, bad.stderr
    assert "REMOTE=LOCAL" in bad.stderr
    bad = cli("account", "edit", str(account_id), "--into", "a//b")
    assert bad.returncode == 2 and "into" in bad.stderr
    pop = cli(
        "account", "add", "--owner", "u@example.org", "--host", "localhost",
        "--protocol", "pop3", "--username", "u", "--password-stdin", "--all-folders",
        stdin="pw\n",
    )  # fmt: skip
    assert pop.returncode == 2 and "POP3 has only the INBOX" in pop.stderr


def test_retention_and_limits(cli: Cli, source: Mailbox):
    account_id = add(cli, source, "--max-messages-per-run", "500")
    bad = cli("account", "edit", str(account_id), "--delete-after", "30")
    assert bad.returncode == 2 and "goes with keep" in bad.stderr
    cli.ok(
        "account", "edit", str(account_id), "--keep", "--delete-after", "30",
        "--max-bytes-per-run", "200M",
    )  # fmt: skip
    shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert (shown["delete_after_days"], shown["max_bytes_per_run"]) == (30, 200 << 20)
    assert shown["max_messages_per_run"] == 500
    cli.ok("account", "edit", str(account_id), "--delete-after", "0", "--max-messages-per-run", "0")
    shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert shown["delete_after_days"] is None and shown["max_messages_per_run"] is None
    assert shown["max_bytes_per_run"] == 200 << 20


def test_first_sync_options(cli: Cli, source: Mailbox):
    account_id = add(cli, source, "--new-only", "--since", "2026-01-01")
    shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert (shown["new_only"], shown["since"]) == (True, "2026-01-01")
    bad = cli("account", "edit", str(account_id), "--since", "1st of May")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
    cli.ok("account", "edit", str(account_id), "--no-new-only", "--since", "")
    shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert (shown["new_only"], shown["since"]) == (False, None)


def test_move_to_option(cli: Cli, source: Mailbox):
    account_id = add(cli, source, "--move-to", "Fetched")
    shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert shown["move_to"] == "Fetched"
    bad = cli("account", "edit", str(account_id), "--keep")
    assert bad.returncode == 2 and "leave out keep" in bad.stderr
    cli.ok("account", "edit", str(account_id), "--move-to", "")
    assert json.loads(cli.ok("account", "show", str(account_id), "--json"))["move_to"] == ""
