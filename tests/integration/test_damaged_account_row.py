"""An account row whose stored folders or folder rules cannot be read (changed by hand, cut
short) is still listed and shown, but never polled on guessed options: its polls end with an
error that says how to fix it, nothing is fetched or deleted, and saving it again mends it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.options import Protocol
from support.dovecot import Mailbox
from support.mailhaul_home import Home


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("rules", '{"move_to": "Archive", "new_onl'),  # cut short
        ("rules", '{"map": "Sent=Junk"}'),  # not the shape of a map
        ("rules", '{"since": "last spring"}'),
        ("folders", "INBOX"),  # not JSON
    ],
)
def test_a_damaged_row_is_shown_but_never_polled_until_saved_again(
    home: Home, mailbox: Mailbox, column: str, value: str
):
    mailbox.deliver(b"Subject: waits\n\nbody\n")
    account = home.add(mailbox, Protocol.IMAP)
    with home.app.db.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.id == account.id).values({column: value}))
    service = home.app.accounts
    assert [a.id for a in service.list_all()] == [account.id]  # still listed
    shown = service.get(account.id)
    assert shown.damaged is not None
    summary = home.poll(account)
    assert (summary.result, summary.fetched) == ("error", 0)
    assert "cannot be read" in (summary.error or "")
    assert "save the account again" in (summary.error or "")
    assert len(mailbox.list_messages()) == 1  # nothing left the server
    assert home.status(account).state == "error"

    service.edit(account.id, shown.spec)  # saved again (the form, `account edit`)
    assert service.get(account.id).damaged is None
    assert home.poll(account).fetched == 1  # the control: a readable row is polled
