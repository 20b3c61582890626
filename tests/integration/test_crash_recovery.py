"""SIGKILL a real `mailhaul fetch` at chosen moments, rerun: every message exactly once.

The test watches the Maildir from outside and kills the process when N messages have
arrived in new/ (between deliveries and records) or while a large message is being
written to tmp/. Nothing in mailhaul knows it is being tested.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailhaul.adapters.db.tables import messages, runs
from mailhaul.domain.options import Protocol
from support.crash import corpus, count_new
from support.dovecot import Mailbox
from support.mailhaul_home import Home
from support.processes import kill_when, start_fetch

BOTH = [Protocol.POP3, Protocol.IMAP]


def large_file_in_tmp(maildir: Path, size: int) -> bool:
    try:
        with os.scandir(maildir / "tmp") as entries:
            return any(e.stat().st_size > size for e in entries)
    except FileNotFoundError:  # not created yet, or the file was renamed meanwhile
        return False


def assert_exactly_once(home: Home, mailbox: Mailbox, sent: list[bytes], keep: bool) -> None:
    delivered = Counter(home.delivered())
    assert delivered == Counter(sent), "some message is missing or was delivered twice"
    on_server = mailbox.list_messages()
    assert len(on_server) == (len(sent) if keep else 0)
    with home.app.db.begin() as conn:
        assert conn.scalar(select(func.count()).where(messages.c.state == "pending")) == 0
        assert conn.scalar(select(func.count()).where(runs.c.result == "running")) == 0


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    home = Home.create(tmp_path / "home")
    yield home
    home.app.db.dispose()


@pytest.mark.parametrize("protocol", BOTH)
@pytest.mark.parametrize("keep", [False, True])
def test_sigkill_after_n_messages_then_rerun_delivers_each_once(
    home: Home, mailbox: Mailbox, protocol: Protocol, keep: bool
):
    sent = corpus(300)
    for raw in sent:
        mailbox.deliver(raw)
    account = home.add(mailbox, protocol, keep=keep)
    maildir = home.maildir_for("owner@local.test")
    killed_at = []
    for target in (1, 70, 150):
        proc = start_fetch(home, account.id, subprocess.PIPE)

        def reached(t: int = target) -> bool:
            return count_new(maildir) >= t

        if kill_when(proc, reached):
            killed_at.append(count_new(maildir))
        if not keep:  # what was delivered and recorded may already be gone from the server
            assert len(mailbox.list_messages()) + count_new(maildir) >= len(sent)
    assert killed_at, "the fetch always finished before the kill point"
    final = start_fetch(home, account.id, subprocess.PIPE)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert_exactly_once(home, mailbox, sent, keep)


@pytest.mark.parametrize("protocol", BOTH)
def test_sigkill_during_a_large_message_then_rerun(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    sent = corpus(5)
    big = b"Message-ID: <big@example.net>\nSubject: big\n\n" + (b"0123456789" * 7 + b"\n") * 300000
    sent.insert(2, big)
    for raw in sent:
        mailbox.deliver(raw)
    account = home.add(mailbox, protocol)
    maildir = home.maildir_for("owner@local.test")
    proc = start_fetch(home, account.id, subprocess.PIPE)
    assert kill_when(proc, lambda: large_file_in_tmp(maildir, 2_000_000))
    assert len(mailbox.list_messages()) >= 4  # the big one and those after it are still there
    final = start_fetch(home, account.id, subprocess.PIPE)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert_exactly_once(home, mailbox, sent, keep=False)
    assert not large_file_in_tmp(maildir, len(big) - 1)
