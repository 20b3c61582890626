"""Schema migrations (Alembic), on SQLite and PostgreSQL: see `--databases` in tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Connection, column, insert, select, table, text

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.schema import head_revision
from mailhaul.adapters.db.tables import accounts, metadata, runs
from mailhaul.cli import app as cli_app
from mailhaul.domain.errors import ConfigError


@pytest.fixture
def empty_db(empty_database_url: str) -> Iterator[Database]:
    db = Database(empty_database_url)
    yield db
    db.dispose()


def _create_pre_issue4_schema(conn: Connection) -> None:
    """The schema `create_all` made before migrations and before issue 4's additions."""
    metadata.create_all(conn)
    conn.execute(text("DROP INDEX ix_messages_gm_msgid"))  # 0012
    conn.execute(text("ALTER TABLE messages DROP COLUMN gm_msgid"))  # 0012
    conn.execute(text("ALTER TABLE accounts DROP COLUMN rules"))  # 0011
    conn.execute(text("DROP TABLE push_watches"))  # 0010
    conn.execute(text("ALTER TABLE accounts DROP COLUMN push"))  # 0010
    for name in ("notices", "incidents"):  # 0009
        conn.execute(text(f"DROP TABLE {name}"))
    for name in ("antispam", "antivirus"):
        conn.execute(text(f"ALTER TABLE accounts DROP COLUMN {name}"))  # 0008
    for name in ("spam", "viruses", "unscanned"):
        conn.execute(text(f"ALTER TABLE runs DROP COLUMN {name}"))  # 0008
    conn.execute(text("DROP TABLE quarantine"))  # 0008
    for name in ("auth_method", "oauth_provider_id", "oauth_tokens_enc", "sign_in_problem"):
        conn.execute(text(f"ALTER TABLE accounts DROP COLUMN {name}"))  # 0007
    conn.execute(text("DROP TABLE oauth_providers"))  # 0007
    conn.execute(text("ALTER TABLE accounts DROP COLUMN fetch_requested_by"))  # 0006
    conn.execute(text("ALTER TABLE folders DROP COLUMN quiet"))  # 0004
    for name in ("settings", "api_keys", "sessions", "users"):  # issue 5
        conn.execute(text(f"DROP TABLE {name}"))
    conn.execute(text("DROP INDEX ix_accounts_owner"))
    conn.execute(text("ALTER TABLE accounts DROP COLUMN owner_domain"))
    conn.execute(text("DROP TABLE workers"))
    conn.execute(text("DROP INDEX ix_accounts_host"))
    conn.execute(text("DROP INDEX ix_runs_started"))
    conn.execute(text("ALTER TABLE accounts DROP COLUMN fetch_requested_at"))
    conn.execute(text("ALTER TABLE accounts DROP COLUMN paused_reason"))


def _an_account_with_a_run(conn: Connection) -> None:
    # Only the columns the old schema had: tables.py's Python-side defaults name newer ones.
    old_accounts = table(
        "accounts", *(column(c.name) for c in accounts.c if c.name != "owner_domain")
    )
    conn.execute(
        insert(old_accounts).values(
            owner="o@example.org",
            protocol="pop3",
            host="mail.example.net",
            port=995,
            security="ssl",
            verify_cert=True,
            username="u",
            password_enc="x",
            folders='["INBOX"]',
            keep=False,
            fetchall=False,
            flush=False,
            max_size=1000,
            deliver_to="",
            interval=300,
            active=True,
            created_at=1.0,
            updated_at=1.0,
            state="ok",
            consecutive_failures=0,
        )
    )
    conn.execute(insert(runs).values(account_id=1, trigger="cli", started_at=2.0, result="ok"))


def test_upgrade_creates_exactly_the_schema_of_tables_py(empty_db: Database):
    assert empty_db.schema_state().empty
    state = empty_db.upgrade()
    assert state.current == head_revision() and state.up_to_date
    # A change to tables.py without a revision fails here.
    assert empty_db.schema_differences() == []
    empty_db.check_current()


def test_upgrade_twice_changes_nothing(empty_db: Database):
    empty_db.upgrade()
    assert empty_db.upgrade().up_to_date
    assert empty_db.schema_differences() == []


def test_home_from_before_migrations_is_stamped_and_keeps_its_data(empty_db: Database):
    with empty_db.begin() as conn:
        _create_pre_issue4_schema(conn)
        _an_account_with_a_run(conn)
    found = empty_db.schema_state()
    assert found.legacy and found.current is None
    with pytest.raises(ConfigError, match=r"before schema migrations.*mailhaul db upgrade"):
        empty_db.check_current()
    empty_db.upgrade()
    assert empty_db.schema_state().up_to_date
    assert empty_db.schema_differences() == []
    with empty_db.begin() as conn:
        assert conn.scalar(select(accounts.c.owner)) == "o@example.org"
        assert conn.scalar(select(accounts.c.owner_domain)) == "example.org"  # filled by 0002
        assert conn.scalar(select(runs.c.result)) == "ok"  # no cascade from a rebuilt table


def test_current_schema_without_version_table_is_stamped_at_baseline(empty_db: Database):
    with empty_db.begin() as conn:
        metadata.create_all(conn)
    assert empty_db.upgrade().current == head_revision()
    with empty_db.begin() as conn:
        versions = conn.scalars(text("SELECT version_num FROM alembic_version")).all()
    assert versions == [head_revision()]  # it matches the head: stamped there


def test_check_current_tells_to_run_db_upgrade(empty_db: Database):
    with pytest.raises(ConfigError, match=r"no mailhaul schema yet.*run `mailhaul db upgrade`"):
        empty_db.check_current()
    empty_db.upgrade()
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(ConfigError, match="newer than this mailhaul knows"):
        empty_db.check_current()


def test_create_schema_upgrades_sqlite_but_only_creates_on_postgresql(empty_db: Database):
    with empty_db.begin() as conn:
        _create_pre_issue4_schema(conn)
    empty_db.create_schema()  # what `init` and `serve` do
    assert empty_db.schema_state().up_to_date is empty_db.is_sqlite
    if not empty_db.is_sqlite:  # shared by workers: upgraded only by `mailhaul db upgrade`
        with pytest.raises(ConfigError, match="mailhaul db upgrade"):
            empty_db.check_current()


def test_create_schema_makes_a_fresh_database_current(empty_db: Database):
    empty_db.create_schema()
    empty_db.check_current()


@pytest.mark.databases("sqlite")
def test_sqlite_foreign_keys_stay_on_after_an_upgrade(empty_db: Database):
    empty_db.upgrade()
    for _ in range(3):  # every pooled connection
        with empty_db.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def _mailhaul(home: Path, url: str, *args: str) -> Result:
    return CliRunner().invoke(cli_app, ["--home", str(home), "--database-url", url, *args])


def test_db_commands(empty_database_url: str, tmp_path: Path):
    home = tmp_path / "home"
    url = empty_database_url
    if url.startswith("sqlite"):
        assert _mailhaul(home, url, "db", "current").exit_code == 2  # no home: `init` first
        home.mkdir()
        (home / "keys").write_text("")  # a home whose database is not made yet
    before = _mailhaul(home, url, "db", "current", "--json")
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)["current"] is None
    upgraded = _mailhaul(home, url, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert f"empty -> {head_revision()}" in upgraded.stdout
    after = json.loads(_mailhaul(home, url, "db", "current", "--json").stdout)
    assert after == {
        "database": url,
        "current": head_revision(),
        "head": head_revision(),
        "up_to_date": True,
    }
    assert "already at revision" in _mailhaul(home, url, "db", "upgrade").stdout
    assert f"{head_revision()} (head)" in _mailhaul(home, url, "db", "current").stdout


def test_concurrent_upgrades_run_one_after_the_other(empty_database_url: str):
    # Several `mailhaul db upgrade`s (or workers' first start) at once: one migrates, the
    # others find the schema current (PostgreSQL: advisory lock; SQLite: BEGIN IMMEDIATE).
    databases = [Database(empty_database_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            states = list(pool.map(lambda db: db.upgrade(), databases))
        assert all(state.up_to_date for state in states)
        assert databases[0].schema_differences() == []
    finally:
        for db in databases:
            db.dispose()
