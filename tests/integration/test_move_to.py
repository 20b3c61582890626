"""``move_to``: after delivery each message is moved on the server instead of deleted,
against a real Dovecot (which has MOVE) and a scripted server without MOVE (COPY,
\\Deleted, expunge); the folder is made if missing and never polled itself; a run that
dies after recording repeats the move, never the delivery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol
from mailhaul.domain.validation import FieldError
from support.dovecot import Mailbox
from support.mailhaul_home import Home
from support.scripted_home import ScriptedHome, make_scripted_home
from support.scripted_imap import ImapScript, Message, ScriptedImapServer
from support.scripted_imap import Mailbox as ScriptedMailbox


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


def test_dovecot_moves_delivered_mail_into_a_folder_it_makes(home: Home, mailbox: Mailbox):
    mailbox.deliver(b"Subject: one\n\nbody\n")
    mailbox.deliver(b"Subject: two\n\nbody\n")
    account = home.add(mailbox, Protocol.IMAP, move_to="Fetched")
    summary = home.poll(account)
    assert summary.fetched == 2, home.log(account)
    assert mailbox.list_messages() == []
    assert len(mailbox.list_messages("Fetched")) == 2  # moved, not deleted
    assert "created the folder 'Fetched'" in home.log(account)
    mailbox.deliver(b"Subject: three\n\nbody\n")
    assert home.poll(account).fetched == 1  # the folder exists now; the moved two stay put
    assert len(mailbox.list_messages("Fetched")) == 3
    assert len(home.delivered()) == 3


def test_the_move_target_is_never_polled_and_goes_without_keep(home: Home, mailbox: Mailbox):
    mailbox.create_folder("Fetched")
    mailbox.deliver(b"Subject: old\n\nbody\n", folder="Fetched")
    mailbox.deliver(b"Subject: new\n\nbody\n")
    account = home.add(mailbox, Protocol.IMAP, move_to="Fetched", rules=_every_folder())
    assert home.poll(account).fetched == 1, home.log(account)
    assert home.poll(account).fetched == 0  # the moved message does not come back
    with pytest.raises(FieldError) as caught:
        home.add(mailbox, Protocol.IMAP, move_to="Fetched", keep=True)
    assert caught.value.field == "move_to"
    with pytest.raises(FieldError):
        home.add(mailbox, Protocol.IMAP, move_to="INBOX")  # a polled folder
    with pytest.raises(FieldError):
        home.add(mailbox, Protocol.POP3, move_to="Fetched")


def _every_folder() -> FolderRules:
    return FolderRules(all_folders=True)


@pytest.mark.parametrize("with_move", [False, True])
def test_a_server_without_move_gets_copy_deleted_and_expunge(tmp_path: Path, with_move: bool):
    home: ScriptedHome = make_scripted_home(tmp_path)
    inbox = ScriptedMailbox(
        7, [Message(1, b"Subject: a\r\n\r\nA\r\n"), Message(2, b"Subject: b\r\n\r\nB\r\n")]
    )
    script = ImapScript(folders={"INBOX": inbox}, extra_caps=("MOVE",) if with_move else ())
    with ScriptedImapServer(script) as server:
        account = home.account(Protocol.IMAP, server.port, "user", "secret", move_to="Done")
        summary = home.poll(account)
        commands = server.command_names()
    assert summary.fetched == 2, home.log(account)
    assert inbox.messages == []
    assert sorted(m.body for m in script.folders["Done"].messages) == [
        b"Subject: a\r\n\r\nA\r\n",
        b"Subject: b\r\n\r\nB\r\n",
    ]
    assert "CREATE" in commands
    if with_move:
        assert "UID" in commands and not any(c.startswith("UID COPY") for c in server.commands)
        assert any(c.startswith("UID MOVE") for c in server.commands)
    else:
        assert any(c.startswith("UID COPY") for c in server.commands)
        assert not any(c.startswith("UID MOVE") for c in server.commands)
    home.app.db.dispose()


def test_a_run_cut_before_the_move_repeats_the_move_never_the_delivery(tmp_path: Path):
    home = make_scripted_home(tmp_path)
    inbox = ScriptedMailbox(7, [Message(1, b"Subject: a\r\n\r\nA\r\n")])
    script = ImapScript(folders={"INBOX": inbox}, extra_caps=("MOVE",), drop_at="UID MOVE")
    with ScriptedImapServer(script) as server:
        account = home.account(Protocol.IMAP, server.port, "user", "secret", move_to="Done")
        first = home.poll(account)
        assert first.result == "error" and first.fetched == 1, home.log(account)
        assert len(inbox.messages) == 1  # delivered and recorded, not moved yet
        script.drop_at = None
        second = home.poll(account)
    assert (second.result, second.fetched) == ("ok", 0), home.log(account)
    assert inbox.messages == [] and len(script.folders["Done"].messages) == 1
    assert len(home.delivered()) == 1  # once
    home.app.db.dispose()
