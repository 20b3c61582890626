"""Fixtures for tests against a real Dovecot (IMAP, POP3, LMTP) on loopback high ports, and
for running tests on each database mailhaul supports.

`dovecot`: one `DovecotServer` for the whole session. `mailbox`: a fresh user on it per test.
A missing Dovecot fails these tests (it does not skip them): run scripts/install-test-deps.sh.

Databases: `mailhaul_database` (autouse) runs a test once per selected database when the test
uses a database fixture (`harness`, `imap`, `pop3`, `database_url`) or sits in one of
DATABASE_MODULES (their homes come from `Home.create`). Select with `--databases=sqlite` or
MAILHAUL_TEST_DATABASES (default `sqlite,postgresql`); `@pytest.mark.databases("postgresql")`
narrows one test. A module whose tests share one home (built by a module-scoped fixture) asks
for `module_database` instead: its tests run once per selected database, sharing one database
of each kind. PostgreSQL tests get a database of their own with the current schema and no
rows (see PostgresServer) on the server of MAILHAUL_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test, the maintenance connection); an unreachable server
fails them (it does not skip them): run scripts/install-test-deps.sh, or select sqlite only.
One exception, for `pytest tests/unit` on a laptop without PostgreSQL: when no databases are
selected (neither --databases nor MAILHAUL_TEST_DATABASES) and the server cannot be reached,
the tests in tests/unit run on SQLite only, and the run ends with a line saying so. An explicit
selection is strict, and so are integration and e2e tests; scripts/test (CI) selects both.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.tables import metadata
from support import mailhaul_home
from support.databases import upgraded_sqlite
from support.dovecot import DovecotServer, Mailbox
from support.dovecot_fixture import running_dovecot
from support.local_servers import pid_alive

pytest_plugins = ["support.scanner_fixtures"]

# Fixtures that give a test a database; a test using one runs once per selected database.
DATABASE_FIXTURES = frozenset({"harness", "imap", "pop3", "database_url", "empty_database_url"})
# Modules whose tests make homes with `Home.create` (its default database is set per test).
DATABASE_MODULES = frozenset({"test_retrieval_semantics"})
# Tests there of the source alone (TLS, login), whose storage is trivial: SQLite only.
SOURCE_ONLY_TESTS = frozenset(
    {
        "test_wrong_password_is_a_login_failure_without_the_password",
        "test_certificate_rejected_without_the_ca_and_accepted_with_it",
    }
)
DATABASES = ("sqlite", "postgresql")
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_HINT = (
    "run scripts/install-test-deps.sh (it installs and starts PostgreSQL), set "
    "MAILHAUL_TEST_POSTGRES_URL, or run on SQLite only: MAILHAUL_TEST_DATABASES=sqlite"
)
_TEST_DB = re.compile(r"mh_(\d+)_[0-9a-f]{12}")
UNIT_TESTS = Path(__file__).resolve().parent / "unit"


def explicit_selection(option: str | None) -> str | None:
    """The databases asked for: --databases, else MAILHAUL_TEST_DATABASES; None if neither."""
    return option or os.environ.get("MAILHAUL_TEST_DATABASES") or None


def selected_databases(option: str | None) -> list[str]:
    """The databases to run on: --databases, else MAILHAUL_TEST_DATABASES, else all."""
    raw = explicit_selection(option) or ",".join(DATABASES)
    kinds = [kind.strip().lower() for kind in raw.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(DATABASES))
    if unknown or not kinds:
        raise ValueError(f"unknown test database(s) {unknown or raw!r}: use {','.join(DATABASES)}")
    return list(dict.fromkeys(kinds))


class PostgresUnavailable(Exception):
    """The PostgreSQL test server cannot be used."""


class PostgresServer:
    """Hands out databases with the current schema, one test at a time each.

    A "fresh database" per test without paying CREATE DATABASE (hundreds of ms of fsync on a
    busy disk) each time: a released database has its connections ended, every row deleted
    and its id sequences restarted, then serves the next test. Empty databases (for migration
    tests) are created and dropped for real.
    """

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url).set(drivername="postgresql+psycopg")
        self.engine = create_engine(
            self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        self.free: list[str] = []
        self.made: list[str] = []

    @classmethod
    def start(cls) -> PostgresServer:
        server = cls(os.environ.get("MAILHAUL_TEST_POSTGRES_URL") or POSTGRES_URL)
        try:
            server._drop_stale()
            server.release(server.acquire())  # fails here, once, if the server is unusable
        except OperationalError as exc:
            server.close()
            where = server.admin_url.render_as_string(hide_password=True)
            raise PostgresUnavailable(
                f"PostgreSQL at {where}: {exc.orig}; {POSTGRES_HINT}"
            ) from exc
        except BaseException:
            server.close()
            raise
        return server

    def url_of(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def acquire(self) -> str:
        """A database with the current schema and no rows, for one test."""
        if self.free:
            return self.free.pop()
        name = self.create_database()
        self.made.append(name)
        db = Database(self.url_of(name))
        try:
            db.upgrade()
        finally:
            db.dispose()
        return name

    def release(self, name: str) -> None:
        """End the test's connections and empty the database for the next test."""
        with self.engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        engine = create_engine(self.url_of(name), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                for table in reversed(metadata.sorted_tables):
                    conn.execute(table.delete())
                conn.execute(
                    text(
                        "SELECT setval(s.oid, 1, false) FROM pg_class s "
                        "WHERE s.relkind = 'S' AND s.relnamespace = 'public'::regnamespace"
                    )
                )
        finally:
            engine.dispose()
        self.free.append(name)

    def create_database(self) -> str:
        """A new, empty database's name."""
        name = f"mh_{os.getpid()}_{secrets.token_hex(6)}"
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        try:
            for name in self.made:
                self.drop_database(name)
        finally:
            self.engine.dispose()

    def _drop_stale(self) -> None:
        # Databases of test runs that were killed (their process is gone) on this host.
        with self.engine.connect() as conn:
            names = conn.scalars(text("SELECT datname FROM pg_database")).all()
        for name in names:
            match = _TEST_DB.fullmatch(name)
            if match and not pid_alive(int(match.group(1))):
                self.drop_database(name)


@dataclass
class UnitFallback:
    """Whether the unit tests of this session run without PostgreSQL, and why."""

    checked: bool = False
    reason: str | None = None  # set: PostgreSQL cannot be reached, unit tests on SQLite only


_UNIT_FALLBACK = pytest.StashKey[UnitFallback]()


def postgres_unreachable() -> str | None:
    """Why the PostgreSQL test server cannot be connected to, or None if it can."""
    url = make_url(os.environ.get("MAILHAUL_TEST_POSTGRES_URL") or POSTGRES_URL)
    where = url.render_as_string(hide_password=True)
    try:
        import psycopg
    except ImportError:
        return f"psycopg is not installed (pip install -e '.[test,postgres]') for {where}"
    try:
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{where}: {first_line}"
    return None


def _unit_tests_without_postgres(metafunc: pytest.Metafunc) -> bool:
    """True for a unit test when no databases were selected and PostgreSQL is not there."""
    if explicit_selection(metafunc.config.getoption("databases")) is not None:
        return False
    if not Path(metafunc.definition.path).resolve().is_relative_to(UNIT_TESTS):
        return False
    fallback = metafunc.config.stash.setdefault(_UNIT_FALLBACK, UnitFallback())
    if not fallback.checked:
        fallback.checked = True
        fallback.reason = postgres_unreachable()
    return fallback.reason is not None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "databases(*kinds): run a database test on these databases only"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--databases",
        default=None,
        help=f"comma-separated databases to run database tests on, of {', '.join(DATABASES)} "
        "[env MAILHAUL_TEST_DATABASES; default: all]",
    )


def _uses_database(metafunc: pytest.Metafunc) -> bool:
    if DATABASE_FIXTURES & set(metafunc.fixturenames):
        return True
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    return module in DATABASE_MODULES and metafunc.function.__name__ not in SOURCE_ONLY_TESTS


def _kinds(metafunc: pytest.Metafunc) -> list[str]:
    try:
        kinds = selected_databases(metafunc.config.getoption("databases"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    only = metafunc.definition.get_closest_marker("databases")
    if only is not None:
        kinds = [kind for kind in kinds if kind in only.args]
    if "postgresql" in kinds and _unit_tests_without_postgres(metafunc):
        kinds.remove("postgresql")
    return kinds


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    fallback = terminalreporter.config.stash.get(_UNIT_FALLBACK, None)
    if fallback is not None and fallback.reason is not None:
        terminalreporter.write_line(
            f"PostgreSQL was not found ({fallback.reason}): unit tests ran on SQLite only. "
            "scripts/test and CI run them on both.",
            yellow=True,
            bold=True,
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "module_database" in metafunc.fixturenames:
        metafunc.parametrize("module_database", _kinds(metafunc), indirect=True, scope="module")
    elif "mailhaul_database" in metafunc.fixturenames and _uses_database(metafunc):
        metafunc.parametrize("mailhaul_database", _kinds(metafunc), indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL test server; its databases are dropped at the end of the session."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def mailhaul_database(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str | None]:
    """The database URL of this test's homes: None for a home's own SQLite file, or a
    PostgreSQL database of its own. Parametrized for database tests only."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.acquire()
    url = server.url_of(name)
    monkeypatch.setattr(mailhaul_home, "DEFAULT_DATABASE_URL", url)
    try:
        yield url
    finally:
        server.release(name)


@pytest.fixture(scope="module")
def module_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The database URL of a module's shared home: None for the home's own SQLite file, or a
    PostgreSQL database with the current schema, for the module's tests of that kind."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.acquire()
    try:
        yield server.url_of(name)
    finally:
        server.release(name)


@pytest.fixture
def database_url(mailhaul_database: str | None, tmp_path: Path) -> str:
    """A database with the current schema: SQLite in tmp_path, or a fresh PostgreSQL one."""
    if mailhaul_database is not None:
        return mailhaul_database
    return upgraded_sqlite(tmp_path)


@pytest.fixture
def empty_database_url(
    request: pytest.FixtureRequest, mailhaul_database: str | None, tmp_path: Path
) -> Iterator[str]:
    """A database without any table: SQLite in tmp_path, or a fresh PostgreSQL one."""
    if mailhaul_database is None:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url_of(name)
    finally:
        server.drop_database(name)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """A private Dovecot for the session; its config, certificates and log are in `root`."""
    with running_dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    """A fresh user `u<random>@example.test` with a random password and an empty INBOX."""
    return dovecot.new_mailbox()
