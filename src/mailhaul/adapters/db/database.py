"""The engine and transactions; SQLite gets WAL, full sync and immediate write locks."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    column,
    create_engine,
    event,
    inspect,
    make_url,
    select,
    table,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from mailhaul.adapters.private_dirs import make_private_dirs
from mailhaul.domain.errors import ConfigError, DatabaseUnusable, MailhaulError, StorageError

if TYPE_CHECKING:
    from mailhaul.adapters.db.schema import SchemaState


VERSION_TABLE = "alembic_version"
_MIGRATION_SCRIPTS = Path(__file__).resolve().with_name("migrations") / "versions"
# What SQLite's error names (and PostgreSQL's SQLSTATE 25006) say about an unusable database.
_UNUSABLE = {
    "SQLITE_NOTADB": "is not a SQLite database (or is damaged)",
    "SQLITE_CORRUPT": "is damaged (restore it from a backup)",
    "SQLITE_READONLY": "is read-only: mailhaul must be able to write it "
    "(check the permissions of the file and of its folder)",
}


def known_revisions() -> frozenset[str]:
    """The schema revisions this code knows, from its migration scripts' names
    (``0004_quiet_folders.py`` is revision ``0004``). Cheap: Alembic is not imported; a test
    checks this against Alembic's own list."""
    return frozenset(path.name.split("_", 1)[0] for path in _MIGRATION_SCRIPTS.glob("[0-9]*_*.py"))


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

        self.check_not_newer()
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
            raise ConfigError(self._newer_schema(str(found.current)))
        else:
            problem = f"{where} is at schema revision {found.current}, not {found.head}"
        raise ConfigError(f"{problem}: run `mailhaul db upgrade`")

    def check_not_newer(self) -> None:
        """Raise ConfigError if the schema is at a revision this code does not know: a newer
        mailhaul's, which an older one must neither use nor "upgrade". Cheap (no Alembic)."""
        with self.read() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return
            version = table(VERSION_TABLE, column("version_num"))
            current = conn.scalar(select(version.c.version_num).limit(1))
        if current is not None and current not in known_revisions():
            raise ConfigError(self._newer_schema(str(current)))

    def _newer_schema(self, current: str) -> str:
        head = max(known_revisions())
        return (
            f"the database {self.safe_url} is at schema revision {current}, newer than this "
            f"mailhaul knows (head {head}): upgrade mailhaul"
        )

    def schema_differences(self) -> list[Any]:
        """Differences between the database and ``tables.metadata`` (none when current)."""
        from mailhaul.adapters.db import schema  # alembic: imported when needed

        with self._errors(), self.engine.connect() as conn:
            return schema.differences(conn)

    def _unusable(self, exc: DBAPIError) -> DatabaseUnusable | None:
        """DatabaseUnusable if ``exc`` says the database is no database, damaged or read-only."""
        name = str(getattr(exc.orig, "sqlite_errorname", "") or "")
        for prefix, what in _UNUSABLE.items():
            if name == prefix or name.startswith(prefix + "_"):
                return DatabaseUnusable(f"the database {self.safe_url} {what} ({exc.orig})")
        if getattr(exc.orig, "sqlstate", None) == "25006":  # read_only_sql_transaction
            what = _UNUSABLE["SQLITE_READONLY"].split(":", 1)[0]
            return DatabaseUnusable(f"the database {self.safe_url} {what} ({exc.orig})")
        return None

    def _translated(self, exc: DBAPIError) -> MailhaulError | None:
        """The mailhaul error for a driver error in a transaction (None: let it through)."""
        unusable = self._unusable(exc)
        if unusable is not None:
            return unusable
        if not isinstance(exc, OperationalError):
            return None  # e.g. an IntegrityError, which callers handle themselves
        if "unable to open database" in str(exc.orig):
            return ConfigError(f"cannot open database {self.safe_url}: {exc.orig}")
        return StorageError(f"database error: {exc.orig}")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            unusable = self._unusable(exc)
            if unusable is not None:
                raise unusable from exc
            if isinstance(exc, OperationalError):
                raise ConfigError(f"cannot open database {self.safe_url}: {exc.orig}") from exc
            raise

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed at the end of the block, rolled back on error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            translated = self._translated(exc)
            if translated is None:
                raise
            raise translated from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads: on SQLite a deferred BEGIN, which neither waits for
        nor holds the write lock, so reads never queue behind another poll's commit."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(mailhaul_read_only=True)
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            translated = self._translated(exc)
            if translated is None:
                raise
            raise translated from exc

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
