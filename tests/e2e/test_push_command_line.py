"""`mailhaul account add/edit --push/--no-push` as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import Cli


def test_account_add_and_edit_take_push_and_no_push(tmp_path: Path):
    cli = Cli(tmp_path / "mh")
    cli.ok("init")
    common = ["--owner", "user@a.test", "--host", "mail.example.net", "--username", "u"]
    added = cli(
        "account", "add", "--protocol", "imap", *common, "--no-push", "--password-stdin",
        "--json", stdin="pw-123456\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    account = json.loads(added.stdout)
    assert account["push"] is False
    cli.ok("account", "edit", str(account["id"]), "--push")
    shown = json.loads(cli.ok("account", "show", str(account["id"]), "--json"))
    assert shown["push"] is True
    pop3 = cli(
        "account", "add", "--protocol", "pop3", *common, "--push", "--password-stdin",
        stdin="pw-123456\n",
    )  # fmt: skip
    assert pop3.returncode != 0 and "push" in pop3.stderr and "IMAP" in pop3.stderr
