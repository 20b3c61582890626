"""Revision 0011: an account that fetched folders besides INBOX before folder mapping
existed keeps landing all its mail in the mailbox itself after the upgrade; a new account
with the same folders files each into the local folder of its name (the new default)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Connection, column, insert, inspect, table

from mailhaul.adapters.db.account_rows import spec_values
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.secrets import SecretBox
from mailhaul.bootstrap import App
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.settings import load_settings
from support.fake_source import FakeServer


def spec(owner: str, folders: tuple[str, ...]) -> AccountSpec:
    return AccountSpec(
        owner=owner,
        protocol=Protocol.IMAP,
        host="mail.example.net",
        port=993,
        security=Security.SSL,
        username="u",
        options=RetrievalOptions(folders=folders),
    )


def add_old_account(conn: Connection, app: App, account: AccountSpec) -> int:
    """An account row as revision 0010 holds it."""
    present = {c["name"] for c in inspect(conn).get_columns("accounts")}
    now = time.time()
    values = {
        **{k: v for k, v in spec_values(account).items() if k in present},
        **{"created_at": now, "updated_at": now, "state": "new", "next_poll_at": now},
        **{"consecutive_failures": 0, "password_enc": ""},
    }
    rows = table("accounts", column("id"), *(column(name) for name in values))
    account_id = int(conn.execute(insert(rows).values(values).returning(column("id"))).scalar_one())
    app.account_store.set_password(conn, account_id, app.secret_box.encrypt("pw", account_id))
    return account_id


def test_older_accounts_stay_flat_and_new_ones_file_into_folders(
    tmp_path: Path, empty_database_url: str
):
    server = FakeServer()
    db = Database(empty_database_url)
    db.upgrade("0010")  # before 0011
    db.dispose()
    settings = load_settings(tmp_path / "home", {"database.url": empty_database_url}, environ={})
    settings.home.mkdir(mode=0o700)
    SecretBox.create(settings.key_file)
    app = App(settings, open_source=server.source)
    try:
        with app.db.begin() as conn:
            old = add_old_account(conn, app, spec("old@example.org", ("INBOX", "Sent")))
            inbox_only = add_old_account(conn, app, spec("in@example.org", ("INBOX",)))
        app.db.upgrade()
        assert app.db.schema_differences() == []
        kept = app.accounts.get(old).spec.options.rules
        assert kept.mapping == (("Sent", ""),)
        assert app.accounts.get(inbox_only).spec.options.rules == FolderRules()

        new = app.accounts.add(spec("new@example.org", ("INBOX", "Sent")), "pw").id
        server.add(b"Subject: sent\r\n\r\nbody\r\n", folder="Sent")
        assert app.poller.poll(old).fetched == 1
        server.add(b"Subject: sent again\r\n\r\nbody\r\n", folder="Sent")
        assert app.poller.poll(new).fetched == 1
        mail = settings.home / "mail" / "example.org"
        assert len(list((mail / "old" / "new").iterdir())) == 1  # flat, as before
        assert not (mail / "old" / ".Sent").exists()
        assert not (mail / "new" / "new").exists() or not list((mail / "new" / "new").iterdir())
        assert len(list((mail / "new" / ".Sent" / "new").iterdir())) == 1  # the new default
        assert (mail / "new" / ".Sent" / "maildirfolder").exists()
    finally:
        app.db.dispose()
