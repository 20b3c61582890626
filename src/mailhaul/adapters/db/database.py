"""The engine and transactions; SQLite gets WAL, full sync and immediate write locks."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from mailhaul.adapters.private_dirs import make_private_dirs
from mailhaul.domain.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from mailhaul.adapters.db.schema import SchemaState


class Database:
    """One database: SQLite file (default) or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = _make_engine(url)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"database url {url!r} is not usable: {exc}") from exc

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.engine.dialect.name == "sqlite"

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    def create_schema(self) -> None:
        """Bring the schema up to date where that is safe to do unasked (``init``, ``serve``).

        SQLite (one host, one home): upgrade. PostgreSQL: create the schema of a database that
        has none; an existing one is upgraded only by ``mailhaul db upgrade``, so that workers
        sharing it never migrate under each other (they refuse with ``check_current()``).
        """
        if self.is_sqlite or self.schema_state().empty:
            self.upgrade()

    def upgrade(self, revision: str = "head") -> SchemaState:
        """``alembic upgrade head``; a home from before migrations is stamped at 0001 first."""
        from mailhaul.adapters.db import schema  # alembic: imported when needed

        with self._errors():
            if not self.is_sqlite:
                with self.engine.begin() as conn:
                    return schema.upgrade(conn, revision)
            with self.engine.connect() as conn:
                # Batch migrations copy and drop tables: with foreign keys on, dropping
                # `accounts` would cascade into messages and runs. The pragma only works
                # outside a transaction, so it is set on the driver's connection.
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute("PRAGMA foreign_keys=OFF")
                try:
                    with conn.begin():
                        result = schema.upgrade(conn, revision)
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise StorageError(f"the upgrade broke foreign keys: {broken[:5]}")
                    return result
                finally:
                    raw.execute("PRAGMA foreign_keys=ON")

    def schema_state(self) -> SchemaState:
        """The database's revision against the code's head."""
        from mailhaul.adapters.db import schema  # alembic: imported when needed

        with self._errors(), self.engine.connect() as conn:
            return schema.state(conn)

    def check_current(self) -> None:
        """Raise ConfigError unless the schema is at the code's head revision."""
        from mailhaul.adapters.db import schema  # alembic: imported when needed

        found = self.schema_state()
        if found.up_to_date:
            return
        where = f"the database {self.safe_url}"
        if found.empty:
            problem = f"{where} has no mailhaul schema yet"
        elif found.legacy:
            problem = f"{where} was created before schema migrations"
        elif found.current not in schema.known_revisions():
            raise ConfigError(
                f"{where} is at schema revision {found.current}, newer than this mailhaul "
                f"knows (head {found.head}): upgrade mailhaul"
            )
        else:
            problem = f"{where} is at schema revision {found.current}, not {found.head}"
        raise ConfigError(f"{problem}: run `mailhaul db upgrade`")

    def schema_differences(self) -> list[Any]:
        """Differences between the database and ``tables.metadata`` (none when current)."""
        from mailhaul.adapters.db import schema  # alembic: imported when needed

        with self._errors(), self.engine.connect() as conn:
            return schema.differences(conn)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise ConfigError(f"cannot open database {self.safe_url}: {exc.orig}") from exc

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed at the end of the block, rolled back on error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            if "unable to open database" in str(exc.orig):
                raise ConfigError(f"cannot open database {self.url}: {exc.orig}") from exc
            raise StorageError(f"database error: {exc.orig}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads: on SQLite a deferred BEGIN, which neither waits for
        nor holds the write lock, so reads never queue behind another poll's commit."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(mailhaul_read_only=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            if "unable to open database" in str(exc.orig):
                raise ConfigError(f"cannot open database {self.url}: {exc.orig}") from exc
            raise StorageError(f"database error: {exc.orig}") from exc

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            make_private_dirs(Path(path).parent)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (pysqlite's own transaction handling is off).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # Switching a new database to WAL needs an exclusive lock and can fail at once while
    # another process opens it too (several workers' first start): try again briefly.
    for attempt in range(50):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.1)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Take the write lock up front: no deadlock upgrading a read lock under concurrency.
    # Database.read() promises no writes and begins without it.
    read_only = conn.get_execution_options().get("mailhaul_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


__all__ = ["Database", "SQLAlchemyError"]
