"""Fixtures for service tests: a real home (SQLite, and PostgreSQL: see tests/conftest.py)
and Maildir, an in-memory source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import Harness, make_harness


@pytest.fixture(params=["pop3", "imap"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, mailhaul_database: str | None
) -> Iterator[Harness]:
    h = make_harness(tmp_path, request.param == "pop3", mailhaul_database)
    yield h
    h.app.db.dispose()


@pytest.fixture
def imap(tmp_path: Path, mailhaul_database: str | None) -> Iterator[Harness]:
    h = make_harness(tmp_path, pop3=False, database_url=mailhaul_database)
    yield h
    h.app.db.dispose()


@pytest.fixture
def pop3(tmp_path: Path, mailhaul_database: str | None) -> Iterator[Harness]:
    h = make_harness(tmp_path, pop3=True, database_url=mailhaul_database)
    yield h
    h.app.db.dispose()
