"""Revision 0005: rows stored with mixed-case addresses (as mailhaul did before) become one
person: one Maildir after the upgrade, and logins that can sign in.

The database is built at revision 0004 and filled the way the older code stored things
(local parts as typed), on SQLite and PostgreSQL. (This code does not poll a database
below its head revision: workers refuse with `check_current()`, so every poll here runs
after the upgrade.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import Connection, column, insert, inspect, select, table

from mailhaul.adapters.db.account_rows import spec_values
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.tables import accounts, users
from mailhaul.adapters.secrets import SecretBox
from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.settings import load_settings
from support.fake_source import FakeServer

PASSWORD = "a-long-password-1"
OLD_ACCOUNTS = [  # owner, deliver_to: three spellings of one person's mailbox
    ("Alice@example.org", ""),
    ("alice@example.org", "ALICE@example.org"),
    ("bob@example.org", "Alice@example.org"),
]
OLD_LOGINS = [
    "Carol@example.org",  # alone: lower-cased, and can sign in at last
    "Dave@example.org",  # beside a lower-case twin: stays as it was
    "dave@example.org",
    "ERIN@example.org",  # two mixed-case twins: the older one is lower-cased
    "Erin@example.org",
]


def old_home(tmp_path: Path, url: str, server: FakeServer) -> App:
    """A home whose database is at revision 0004 with rows as the older code stored them."""
    db = Database(url)
    db.upgrade("0004")
    db.dispose()
    settings = load_settings(tmp_path / "home", {"database.url": url}, environ={})
    settings.home.mkdir(mode=0o700)
    SecretBox.create(settings.key_file)
    app = App(settings, open_source=server.source)
    now = time.time()
    with app.db.begin() as conn:
        for owner, deliver_to in OLD_ACCOUNTS:
            spec = AccountSpec(
                owner=owner,
                protocol=Protocol.POP3,
                host="mail.example.net",
                port=995,
                security=Security.SSL,
                username="u",
                deliver_to=deliver_to,
            )
            account_id = _add_old_account(conn, spec, now)
            token = app.secret_box.encrypt("pw", account_id)
            app.account_store.set_password(conn, account_id, token)
        hashed = app.password_hashes.hash(PASSWORD)
        for login in OLD_LOGINS:
            app.users.store.add(conn, login, Role.USER, [], hashed, now)
    return app


def _add_old_account(conn: Connection, spec: AccountSpec, now: float) -> int:
    """An account row as revision 0004 holds it (the columns of later revisions left out)."""
    present = {column["name"] for column in inspect(conn).get_columns("accounts")}
    values = {
        **{k: v for k, v in spec_values(spec).items() if k in present},
        "created_at": now,
        "updated_at": now,
        "state": "new",
        "next_poll_at": now,
        "consecutive_failures": 0,
        "password_enc": "",
    }
    old_accounts = table("accounts", column("id"), *(column(name) for name in values))
    return int(
        conn.execute(insert(old_accounts).values(values).returning(column("id"))).scalar_one()
    )


def poll_one_message(app: App, server: FakeServer, account_id: int) -> None:
    server.add(b"Subject: for alice %d\r\n\r\nbody\r\n" % account_id)
    assert app.poller.poll(account_id).fetched == 1


def test_mixed_case_rows_are_one_person_before_and_after_the_upgrade(
    tmp_path: Path, empty_database_url: str
):
    server = FakeServer(pop3=True)
    app = old_home(tmp_path, empty_database_url, server)
    domain_dir = app.settings.home / "mail" / "example.org"
    try:
        assert app.users.authenticate("Carol@example.org", PASSWORD) is None  # the old bug

        app.db.upgrade()
        assert app.db.schema_state().up_to_date
        assert app.db.schema_differences() == []
        with app.db.begin() as conn:
            stored = conn.execute(
                select(accounts.c.owner, accounts.c.deliver_to).order_by(accounts.c.id)
            ).all()
            logins = set(conn.scalars(select(users.c.login)))
        assert [tuple(row) for row in stored] == [
            ("alice@example.org", ""),
            ("alice@example.org", "alice@example.org"),
            ("bob@example.org", "alice@example.org"),
        ]
        assert logins == {
            "carol@example.org",
            "Dave@example.org",
            "dave@example.org",
            "erin@example.org",
            "Erin@example.org",
        }
        signed_in = app.users.authenticate("CAROL@Example.org", PASSWORD)
        assert signed_in is not None and signed_in.login == "carol@example.org"
        dave = app.users.authenticate("Dave@example.org", PASSWORD)
        assert dave is not None and dave.login == "dave@example.org"  # the twin keeps working

        poll_one_message(app, server, 1)
        poll_one_message(app, server, 2)
        poll_one_message(app, server, 3)
        assert os.listdir(domain_dir) == ["alice"]
        assert len(os.listdir(domain_dir / "alice" / "new")) == 3
    finally:
        app.db.dispose()
