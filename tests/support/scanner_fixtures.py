"""Fixtures of the real scanners (rspamd, spamd, clamd), started once per test session when
a test asks for one (a pytest plugin: tests/conftest.py names it). A missing scanner fails
its tests (it does not skip them): run scripts/install-test-deps.sh."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from support.scanners import ClamdServer, RspamdServer, ScannerError, SpamdServer

_T = TypeVar("_T", RspamdServer, SpamdServer, ClamdServer)


def _started(server: _T) -> Iterator[_T]:
    try:
        server.start()
    except ScannerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RspamdServer]:
    """rspamd's normal worker, private to the session."""
    yield from _started(RspamdServer(tmp_path_factory.mktemp("rspamd")))


@pytest.fixture(scope="session")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpamdServer]:
    """SpamAssassin's spamd, private to the session."""
    yield from _started(SpamdServer(tmp_path_factory.mktemp("spamd")))


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    """ClamAV's clamd with the EICAR test signature, private to the session (a test that
    stops it starts it again before it ends)."""
    yield from _started(ClamdServer(tmp_path_factory.mktemp("clamd")))
