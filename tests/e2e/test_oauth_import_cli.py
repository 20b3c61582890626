"""fetchmail's `auth xoauth2|oauthbearer` and getmail's `use_xoauth2` import as OAuth2
accounts waiting in "sign-in needed" (their token helpers cannot be reused), reported line by
line; a token fetchmail keeps in `password` is not stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import Cli

TOKEN = "ya29.a0-fetchmail-token-helper-output"
RC = f"""\
poll imap.gmail.com proto imap auth xoauth2 user "me@gmail.com" password "{TOKEN}" is me@example.org here ssl
poll mail.corp.example proto imap auth oauthbearer user "me@corp.example" is me@example.org here ssl
poll pop.example.net proto pop3 user "plain" password "pw-1" is me@example.org here ssl
"""  # noqa: E501
GETMAILRC = f"""\
[retriever]
type = SimpleIMAPSSLRetriever
server = outlook.office365.com
username = me@contoso.example
password = {TOKEN}
use_xoauth2 = True

[destination]
type = Maildir
path = /srv/mail/example.org/me/

[options]
delete = true
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "mh", MAILHAUL_WEB_LISTEN="")
    cli.ok("init")
    cli.ok("oauth", "provider", "add", "google", "--preset", "google", "--client-id", "g")
    cli.ok(
        "oauth", "provider", "add", "corp", "--token-url", "https://idp.corp.example/t",
        "--device-url", "https://idp.corp.example/d", "--scope", "mail", "--client-id", "c",
    )  # fmt: skip
    return cli


def test_fetchmail_oauth_entries_import_waiting_for_a_sign_in(cli: Cli, tmp_path: Path):
    rc = tmp_path / "fetchmailrc"
    rc.write_text(RC)
    first = cli("import", "fetchmailrc", str(rc), "--json")
    assert first.returncode == 1  # the corp entry: no provider fits its server
    report = json.loads(first.stdout)
    by_line = {int(a["source"].rsplit(":", 1)[1]): a for a in report["accounts"]}
    assert by_line[1]["action"] == "created" and by_line[3]["action"] == "created"
    assert by_line[2]["action"] == "skipped"
    assert "register its provider" in by_line[2]["reason"]
    assert any("auth xoauth2: signs in with OAuth2" in note for note in by_line[1]["notes"])
    gmail = json.loads(cli.ok("account", "show", str(by_line[1]["id"]), "--json"))
    assert (gmail["sign_in"], gmail["state"]) == ("oauth2", "sign-in needed")
    plain = json.loads(cli.ok("account", "show", str(by_line[3]["id"]), "--json"))
    assert (plain["sign_in"], plain["state"]) == ("password", "new")  # the control
    second = cli("import", "fetchmailrc", str(rc), "--oauth-provider", "corp", "--json")
    assert second.returncode == 0, second.stdout
    corp = next(a for a in json.loads(second.stdout)["accounts"] if a["source"].endswith(":2"))
    assert corp["action"] == "created"
    shown = json.loads(cli.ok("account", "show", str(corp["id"]), "--json"))
    assert shown["state"] == "sign-in needed"
    assert TOKEN not in first.stdout + second.stdout + cli.ok("export", "--json")


def test_getmail_use_xoauth2_imports_as_oauth2(cli: Cli, tmp_path: Path):
    cli.ok("oauth", "provider", "add", "m365", "--preset", "microsoft", "--client-id", "m")
    rc = tmp_path / "getmailrc"
    rc.write_text(GETMAILRC)
    imported = cli("import", "getmailrc", str(rc), "--json")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    [account] = json.loads(imported.stdout)["accounts"]
    assert any(":6: signs in with OAuth2" in note for note in account["notes"])
    shown = json.loads(cli.ok("account", "show", str(account["id"]), "--json"))
    assert (shown["sign_in"], shown["state"]) == ("oauth2", "sign-in needed")
    assert TOKEN not in imported.stdout


def test_an_export_carries_the_provider_by_name_to_another_home(cli: Cli, tmp_path: Path):
    rc = tmp_path / "fetchmailrc"
    rc.write_text(RC)
    cli("import", "fetchmailrc", str(rc), "--oauth-provider", "corp", "--json")
    exported = tmp_path / "export.json"
    cli.ok("export", "--output", str(exported))
    data = json.loads(exported.read_text())
    gmail = next(a for a in data["accounts"] if a["host"] == "imap.gmail.com")
    assert (gmail["sign_in"], gmail["oauth_provider"]) == ("oauth2", "google")
    assert "oauth_provider_id" not in gmail and TOKEN not in exported.read_text()

    elsewhere = Cli(tmp_path / "other", MAILHAUL_WEB_LISTEN="")
    elsewhere.ok("init")
    without = json.loads(elsewhere("import", "json", str(exported), "--json").stdout)
    skipped = [a for a in without["accounts"] if a["action"] == "skipped"]
    assert len(skipped) == 2 and all("register its provider" in a["reason"] for a in skipped)
    elsewhere.ok("oauth", "provider", "add", "google", "--preset", "google", "--client-id", "g")
    elsewhere.ok(
        "oauth", "provider", "add", "corp", "--token-url", "https://idp.corp.example/t",
        "--device-url", "https://idp.corp.example/d", "--scope", "mail", "--client-id", "c",
    )  # fmt: skip
    again = json.loads(elsewhere("import", "json", str(exported), "--json").stdout)
    created = [a for a in again["accounts"] if a["action"] == "created"]
    assert len(created) == 2  # the two OAuth2 accounts; the password one came the first time
    listed = json.loads(elsewhere.ok("account", "list", "--json"))
    oauth = [a for a in listed if a["sign_in"] == "oauth2"]
    assert len(oauth) == 2 and all(a["state"] == "sign-in needed" for a in oauth)
