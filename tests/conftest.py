"""Fixtures for tests against a real Dovecot (IMAP, POP3, LMTP) on loopback high ports.

`dovecot`: one `DovecotServer` for the whole session. `mailbox`: a fresh user on it per test.
A missing Dovecot fails these tests (it does not skip them): run scripts/install-test-deps.sh.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.dovecot import DOVECOT_BINARY, INSTALL_HINT, DovecotError, DovecotServer, Mailbox


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """A private Dovecot for the session; its config, certificates and log are in `root`."""
    if not DOVECOT_BINARY.exists():
        pytest.fail(f"{DOVECOT_BINARY} is missing: {INSTALL_HINT}", pytrace=False)
    try:
        server = DovecotServer(tmp_path_factory.mktemp("dovecot"))
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


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
    """A fresh user `u<random>@example.test` with a random password and an empty INBOX."""
    return dovecot.new_mailbox()
