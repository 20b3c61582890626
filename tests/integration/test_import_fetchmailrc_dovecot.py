"""A fetchmailrc imported as a user would, then fetched from the real Dovecot it describes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.importers.fetchmailrc import parse_fetchmailrc
from mailhaul.services.importing import ImportDefaults, ImportService
from support.dovecot import Mailbox
from support.mailhaul_home import OWNER, Home

# Folder names on the server, and how a working fetchmailrc writes them (as fetchmail sends
# them: modified UTF-7).
FOLDERS = {
    "Привет": "&BB8EQAQ4BDIENQRC-",
    "Café & Co": "Caf&AOk- &- Co",
    "Archive/Привет": "Archive/&BB8EQAQ4BDIENQRC-",
}


def message(n: int) -> bytes:
    return (
        b"From: sender@example.net\nTo: someone@example.test\n"
        b"Message-ID: <utf7-%d@example.net>\nSubject: message %d\n\nbody %d\n" % (n, n, n)
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


def test_modified_utf7_folders_of_a_fetchmailrc_are_fetched_from_the_folders_of_that_name(
    home: Home, mailbox: Mailbox
):
    for n, folder in enumerate(FOLDERS):
        mailbox.deliver(message(n), folder)
    written = " ".join(f'"{name}"' for name in FOLDERS.values())
    rc = (
        f"poll localhost port {mailbox.ports.imaps} proto imap\n"
        f'    user "{mailbox.user}" pass "{mailbox.password}" is {OWNER} here\n'
        f'    ssl sslcertfile "{mailbox.server.ca_path}" keep\n'
        f"    folder {written}\n"
    )
    summary = ImportService(home.app.accounts).apply(
        "fetchmailrc", parse_fetchmailrc(rc, "rc"), ImportDefaults(owner=OWNER)
    )
    [outcome] = summary.outcomes
    assert outcome.action == "created", outcome.reason
    assert "rc:4: folder 'Caf&AOk- &- Co' read as modified UTF-7: 'Café & Co'" in outcome.notes
    assert outcome.account_id is not None
    account = home.app.accounts.get(outcome.account_id)
    assert account.spec.options.folders == tuple(FOLDERS)

    run = home.poll(account)
    assert (run.result, run.fetched) == ("ok", 3), home.log(account)
    assert home.delivered() == sorted(message(n) for n in range(3))
    assert home.poll(account).fetched == 0  # kept, and not delivered again
    assert home.delivered() == sorted(message(n) for n in range(3))
    assert all(len(mailbox.list_messages(folder)) == 1 for folder in FOLDERS)
