"""A private Dovecot for a test or a fixture, started and closed around it; a machine that
cannot run one fails the test with the reason (and the install hint), never skips it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.dovecot import DOVECOT_BINARY, INSTALL_HINT, DovecotError, DovecotServer


@contextmanager
def running_dovecot(root: Path, introspection_url: str = "") -> Iterator[DovecotServer]:
    """A Dovecot of its own in ``root`` (see ``DovecotServer`` for ``introspection_url``)."""
    if not DOVECOT_BINARY.exists():
        pytest.fail(f"{DOVECOT_BINARY} is missing: {INSTALL_HINT}", pytrace=False)
    try:
        server = DovecotServer(root, introspection_url=introspection_url)
    except DovecotError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
    except DovecotError as exc:
        server.close()
        pytest.fail(f"cannot start the test Dovecot: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()
