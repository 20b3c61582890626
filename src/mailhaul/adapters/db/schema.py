"""Schema migrations with Alembic, run in code (no alembic.ini): upgrade, stamp, compare.

The scripts live in the package (``migrations/``), so this works from an installed wheel.
Every function takes a connection inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, inspect, text

from mailhaul.adapters.db.tables import metadata

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# The revision that describes the schema homes had before migrations existed (plus the
# columns and tables of issue 4, which `_bring_to_baseline` adds when they are missing).
BASELINE = "0001"
# What revisions after the baseline add: a pre-migrations home gets them from those revisions.
_AFTER_BASELINE_TABLES = frozenset(
    {"users", "sessions", "api_keys", "settings", "oauth_providers", "quarantine"}
    | {"incidents", "notices", "push_watches"}
    # 0002, 0003, 0007, 0008, 0009, 0010
)
# columns added by revisions after the baseline: 0002, 0004, 0006, 0007, 0008, 0009, 0010,
# 0011, 0012
_AFTER_BASELINE = frozenset(
    {
        ("accounts", "owner_domain"),
        ("folders", "quiet"),
        ("accounts", "fetch_requested_by"),
        ("accounts", "auth_method"),
        ("accounts", "oauth_provider_id"),
        ("accounts", "oauth_tokens_enc"),
        ("accounts", "sign_in_problem"),
        ("accounts", "antispam"),
        ("accounts", "antivirus"),
        ("runs", "spam"),
        ("runs", "viruses"),
        ("runs", "unscanned"),
        ("users", "notices"),
        ("accounts", "push"),
        ("accounts", "rules"),
        ("messages", "gm_msgid"),
    }
)
_AFTER_BASELINE_INDEXES = frozenset(
    {"ix_accounts_owner", "ix_quarantine_account", "ix_incidents_account", "ix_notices_due"}
    | {"ix_messages_gm_msgid"}
)  # 0002, 0008, 0009, 0012
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock key: concurrent `mailhaul db upgrade`s run one after the other.
_PG_LOCK_KEY = 0x6D61696C68  # "mailh"


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (None: no mailhaul schema or pre-migrations)."""

    current: str | None
    head: str
    legacy: bool  # mailhaul tables without alembic_version (a home from before migrations)
    empty: bool  # no mailhaul tables at all

    @property
    def up_to_date(self) -> bool:
        """Whether the database is at the code's head revision."""
        return self.current == self.head


def alembic_config(conn: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts, handing over ``conn``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision this code knows."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return {script.revision for script in scripts.walk_revisions()}


def state(conn: Connection) -> SchemaState:
    """The database's revision and what kind of database it is."""
    names = set(inspect(conn).get_table_names())
    current = MigrationContext.configure(conn).get_current_revision()
    mailhaul_tables = names & set(metadata.tables)
    return SchemaState(
        current=current,
        head=head_revision(),
        legacy=current is None and VERSION_TABLE not in names and bool(mailhaul_tables),
        empty=not mailhaul_tables and current is None,
    )


def upgrade(conn: Connection, revision: str = "heads") -> SchemaState:
    """Upgrade to ``revision`` (stamping a pre-migrations home at the baseline first)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    if state(conn).legacy:
        if differences(conn):
            _bring_to_baseline(conn)
            command.stamp(alembic_config(conn), BASELINE)
        else:  # made by create_all from this very code: it is the head already
            command.stamp(alembic_config(conn), "heads")
    command.upgrade(alembic_config(conn), revision)
    return state(conn)


def differences(conn: Connection) -> list[Any]:
    """What differs between the database and ``tables.metadata`` (empty: they match)."""
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _bring_to_baseline(conn: Connection) -> None:
    """Give a home made before issue 4 what revision 0001 has: new tables, nullable
    columns and indexes (all additive; nothing is dropped or rewritten)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    operations = Operations(MigrationContext.configure(conn))
    for table in metadata.sorted_tables:
        if table.name in _AFTER_BASELINE_TABLES:
            continue  # made by its own revision after the stamp
        if table.name not in present:
            table.create(conn)
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns and (table.name, column.name) in _AFTER_BASELINE:
                continue
            if column.name not in columns:
                if not column.nullable:
                    raise RuntimeError(
                        f"cannot add the required column {table.name}.{column.name} "
                        "to a database from before migrations"
                    )
                operations.add_column(table.name, Column(column.name, column.type))
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes and index.name not in _AFTER_BASELINE_INDEXES:
                index.create(conn)
