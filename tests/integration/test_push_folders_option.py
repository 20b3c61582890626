"""The `push_folders` option (IDLE on each listed folder where the server has no NOTIFY)
through the CLI (`--push-folder`, `--no-push-folders`), the API, the account page and an
export read back by an import: stored with the account and shown where it is set."""

from __future__ import annotations

import json
from pathlib import Path

from mailhaul.domain.access import Role
from support.api import Api, add_person, client_for, error_of, make_app
from support.cli import Cli

ACCOUNT = {
    "owner": "user@a.test",
    "protocol": "imap",
    "host": "mail.example.net",
    "username": "petrov",
    "password": "the-source-password",
    "folders": ["INBOX", "Lists", "Work"],
}


def test_the_api_stores_replaces_and_clears_push_folders(tmp_path: Path, database_url: str):
    app = make_app(tmp_path / "home", database_url)
    admin = add_person(app, "admin", "admin", Role.ADMIN)
    with client_for(app)[1] as client:
        api = Api(client, admin.key)
        created = api.post("/accounts", {**ACCOUNT, "push_folders": ["INBOX", "Lists"]})
        assert created.status_code == 201, created.text
        assert created.json()["push_folders"] == ["INBOX", "Lists"]
        account = f"/accounts/{created.json()['id']}"
        assert api.patch(account, {"interval": 600}).json()["push_folders"] == ["INBOX", "Lists"]
        assert api.patch(account, {"push_folders": ["Work"]}).json()["push_folders"] == ["Work"]
        assert api.get(account).json()["push_folders"] == ["Work"]  # stored
        refused = api.patch(account, {"push_folders": ["Archive"]})
        assert refused.status_code == 422
        assert error_of(refused)["field"] == "push_folders"
        assert api.patch(account, {"push_folders": []}).json()["push_folders"] == []
    app.db.dispose()


def test_the_cli_sets_and_clears_push_folders_and_an_import_of_an_export_keeps_them(
    tmp_path: Path,
):
    first, second = Cli(tmp_path / "first"), Cli(tmp_path / "second")
    for cli in (first, second):
        cli.ok("init")

    def push_folders(cli: Cli) -> list[str]:
        [account] = json.loads(cli.ok("account", "list", "--json"))
        return list(account["push_folders"])

    account_id = first.ok(
        "account", "add", "--owner", "user@a.test", "--protocol", "imap",
        "--host", "mail.example.net", "--username", "petrov", "--password-stdin",
        "--folder", "INBOX", "--folder", "Lists", "--push-folder", "Lists",
        stdin="the-source-password\n",
    ).strip()  # fmt: skip
    assert push_folders(first) == ["Lists"]
    exported = tmp_path / "export.json"
    first.ok("export", "--output", str(exported))
    second.ok("import", "json", str(exported))
    assert push_folders(second) == ["Lists"]
    first.ok("account", "edit", account_id, "--no-push-folders")
    assert push_folders(first) == []
