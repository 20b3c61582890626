"""Incidents from the command line, as a cron-driven `mailhaul fetch` runs them: the notice
lands in the owner's own mailbox without any service running, and `mailhaul incidents`
shows the incident and who was told."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import Cli
from support.dovecot import Mailbox

OWNER = "i.petrov@mydomain.test"


def notices(cli: Cli) -> list[bytes]:
    new = cli.home / "mail" / "mydomain.test" / "i.petrov" / "new"
    return [p.read_bytes() for p in sorted(new.glob("*"))] if new.is_dir() else []


def test_fetch_by_cron_tells_the_owner_once(tmp_path: Path, mailbox: Mailbox):
    cli = Cli(tmp_path / "mh")
    cli.ok("init")
    cli.ok("settings", "set", "notify.after_failures", "2")
    bad = cli("settings", "set", "notify.after_failures", "0")
    assert bad.returncode == 2 and "must be positive" in bad.stderr
    added = cli(
        "account", "add", "--owner", OWNER, "--protocol", "pop3", "--host", "localhost",
        "--port", str(mailbox.ports.pop3s), "--ca-file", str(mailbox.server.ca_path),
        "--username", mailbox.user, "--password-stdin", stdin="wrong-password-123\n",
    )  # fmt: skip
    account = added.stdout.strip()
    assert cli("fetch", account).returncode == 1
    assert notices(cli) == []
    assert "no notice yet" not in cli.ok("incidents")  # the table lists it
    assert cli("fetch", account).returncode == 1  # the second failure: due
    (notice,) = notices(cli)
    assert b"X-Mailhaul-Notice: account.failing" in notice
    assert b"wrong-password-123" not in notice
    (incident,) = json.loads(cli.ok("incidents", "--json"))
    assert (incident["account_id"], incident["open"], incident["failures"]) == (
        int(account),
        True,
        2,
    )
    assert [(n["recipient"], n["state"]) for n in incident["notices"]] == [(OWNER, "sent")]
    assert cli("fetch", account).returncode == 1
    assert len(notices(cli)) == 1  # one per incident
    assert cli("incidents", "--account", "99").returncode == 3  # no such account
