"""Spam and virus checks from the command line, as an administrator sets them up and a user's
infected mail is listed, released and deleted: real Dovecot, real clamd and spamd."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import Cli
from support.dovecot import Mailbox
from support.scanners import SIGNATURE, ClamdServer, SpamdServer, ham, infected, spam

OWNER = "i.petrov@mydomain.test"


def maildir_files(cli: Cli) -> list[bytes]:
    maildir = cli.home / "mail" / "mydomain.test" / "i.petrov"
    return sorted(path.read_bytes() for path in (maildir / "new").glob("*"))


def test_an_admin_sets_up_scanners_and_a_user_gets_a_quarantine(
    tmp_path: Path, mailbox: Mailbox, clamd: ClamdServer, spamd: SpamdServer
):
    cli = Cli(tmp_path / "mh")
    cli.ok("init")
    bad = cli("settings", "set", "filter.clamd", "clamd-somewhere")
    assert bad.returncode == 2 and "host:port or the path of a unix socket" in bad.stderr
    cli.ok("settings", "set", "filter.clamd", clamd.address)
    cli.ok("settings", "set", "filter.spamd", spamd.address)
    cli.ok("settings", "set", "filter.antivirus", "quarantine")  # new accounts' default

    added = cli(
        "account", "add", "--owner", OWNER, "--protocol", "imap", "--host", "localhost",
        "--port", str(mailbox.ports.imaps), "--ca-file", str(mailbox.server.ca_path),
        "--username", mailbox.user, "--password-stdin", "--json",
        stdin=mailbox.password + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    account = json.loads(added.stdout)
    assert (account["antispam"], account["antivirus"]) == ("off", "quarantine")
    account_id = str(account["id"])
    wrong = cli("account", "edit", account_id, "--antispam", "maybe")
    assert wrong.returncode == 2 and "tag" in wrong.stderr and "junk" in wrong.stderr
    cli.ok("account", "edit", account_id, "--antispam", "tag")
    shown = json.loads(cli.ok("account", "show", account_id, "--json"))
    assert (shown["antispam"], shown["antivirus"]) == ("tag", "quarantine")

    for raw in (infected(1), spam(2), ham(3), infected(4)):
        mailbox.deliver(raw.replace(b"\r\n", b"\n"))
    cli.ok("fetch", account_id)
    assert mailbox.list_messages() == []
    delivered = maildir_files(cli)
    assert len(delivered) == 2
    assert sum(b"X-Spam-Flag: YES" in data for data in delivered) == 1
    runs = json.loads(cli.ok("runs", account_id, "--json"))
    assert (runs[0]["spam"], runs[0]["viruses"]) == (1, 2)

    listed = json.loads(cli.ok("quarantine", "list", "--account", account_id, "--json"))
    assert [entry["subject"] for entry in listed] == ["Invoice 4", "Invoice 1"]
    assert all(entry["signature"].startswith(SIGNATURE) for entry in listed)
    table = cli.ok("quarantine", "list")
    assert "Invoice 1" in table and SIGNATURE in table

    first, second = listed[1]["id"], listed[0]["id"]
    assert "released" in cli.ok("quarantine", "release", str(first))
    assert any(b"Subject: Invoice 1" in data for data in maildir_files(cli))
    cli.ok("quarantine", "delete", str(second), "--yes")
    assert json.loads(cli.ok("quarantine", "list", "--json")) == []
    assert cli("quarantine", "release", str(second)).returncode == 3  # gone: not found
    assert len(maildir_files(cli)) == 3
