"""SIGKILL a real `mailhaul fetch` of an account that moves delivered mail (``move_to``)
or deletes kept mail after its days (``delete_after_days``), then rerun: every message is
delivered exactly once, and none is lost from the server before it was delivered."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol
from support.crash import corpus, count_new
from support.dovecot import Mailbox
from support.mailhaul_home import Home
from support.processes import kill_when, start_fetch


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


def rerun(home: Home, account_id: int) -> None:
    final = start_fetch(home, account_id, subprocess.PIPE)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()


def test_sigkill_while_moving_then_rerun(home: Home, mailbox: Mailbox):
    sent = corpus(300)
    for raw in sent:
        mailbox.deliver(raw)
    mailbox.create_folder("Fetched")  # so the test can look into it from the first kill on
    account = home.add(mailbox, Protocol.IMAP, move_to="Fetched")
    maildir = home.maildir_for("owner@local.test")
    killed = 0
    for target in (1, 120, 240):
        proc = start_fetch(home, account.id, subprocess.PIPE)

        def reached(t: int = target) -> bool:
            return count_new(maildir) >= t

        killed += kill_when(proc, reached)
        # nothing leaves INBOX but into Fetched, and only once delivered
        on_server = len(mailbox.list_messages()) + len(mailbox.list_messages("Fetched"))
        assert on_server == len(sent)
        assert len(mailbox.list_messages("Fetched")) <= count_new(maildir)
    assert killed, "the fetch always finished before the kill point"
    rerun(home, account.id)
    assert Counter(home.delivered()) == Counter(sent)
    assert mailbox.list_messages() == []
    assert len(mailbox.list_messages("Fetched")) == len(sent)  # moved, each once


def test_sigkill_with_delete_after_then_rerun(home: Home, mailbox: Mailbox):
    sent = corpus(300)
    for raw in sent:
        mailbox.deliver(raw)
    account = home.add(mailbox, Protocol.POP3, keep=True, delete_after_days=1)
    maildir = home.maildir_for("owner@local.test")
    proc = start_fetch(home, account.id, subprocess.PIPE)
    assert kill_when(proc, lambda: count_new(maildir) >= 100)
    assert len(mailbox.list_messages()) == len(sent)  # kept: nothing deleted yet
    rerun(home, account.id)
    assert Counter(home.delivered()) == Counter(sent)
    assert len(mailbox.list_messages()) == len(sent)  # their day has not passed
