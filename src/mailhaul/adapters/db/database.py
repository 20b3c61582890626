"""The engine and transactions; SQLite gets WAL, full sync and immediate write locks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from mailhaul.adapters.db.tables import metadata
from mailhaul.domain.errors import ConfigError, StorageError


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

    def create_schema(self) -> None:
        """Create missing tables (idempotent)."""
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise ConfigError(f"cannot open database {self.url}: {exc.orig}") from exc

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

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Take the write lock up front: no deadlock upgrading a read lock under concurrency.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


__all__ = ["Database", "SQLAlchemyError"]
