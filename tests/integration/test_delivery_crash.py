"""SIGKILL a real `mailhaul fetch` while it delivers over LMTP or to an MDA, then rerun.

Nothing may be lost. A network hand-off (LMTP 250, MDA exit 0) cannot be checked after a
crash, so the message in hand at the moment of the kill may arrive twice — at most one
duplicate per kill, never more (each accepted message is recorded at once).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol
from support.dovecot import DovecotServer, Mailbox
from support.mailhaul_home import Home
from support.processes import kill_when, start_fetch
from support.smtp_server import Handler, SmtpTestServer

COUNT = 150
MESSAGE_ID = re.compile(rb"Message-ID: <(dc\d+@example\.net)>")


def corpus() -> list[bytes]:
    return [
        b"From: a@example.net\nMessage-ID: <dc%d@example.net>\nSubject: %d\n\n%s"
        % (n, n, b"text\n" * (50 + n % 40))
        for n in range(COUNT)
    ]


def files_in(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if p.is_file()]
    except FileNotFoundError:
        return []


def crash_and_rerun(home: Home, source: Mailbox, account_id: int, delivered_files) -> int:
    kills = 0
    for target in (1, 40, 90):

        def reached(t: int = target) -> bool:
            return len(delivered_files()) >= t

        if kill_when(start_fetch(home, account_id), reached):
            kills += 1
    final = start_fetch(home, account_id)
    assert final.wait(timeout=120) == 0
    assert source.list_messages() == []  # everything delivered, then deleted
    return kills


def assert_nothing_lost(files: list[Path] | list[bytes], kills: int) -> None:
    datas = [f if isinstance(f, bytes) else f.read_bytes() for f in files]
    ids = Counter(m.group(1) for data in datas if (m := MESSAGE_ID.search(data)))
    assert set(ids) == {b"dc%d@example.net" % n for n in range(COUNT)}, "a message was lost"
    duplicates = sum(n - 1 for n in ids.values())
    assert duplicates <= kills, f"{duplicates} duplicates after {kills} kills"


def test_sigkill_during_lmtp_delivery_loses_nothing(tmp_path: Path, dovecot: DovecotServer):
    toml = f'[delivery]\nmethod = "lmtp"\nlmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
    home = Home.create(tmp_path / "home", toml)
    source, local = dovecot.new_mailbox(), dovecot.new_mailbox()
    for raw in corpus():
        source.deliver(raw)
    account = home.add(source, Protocol.POP3, deliver_to=local.user)

    def delivered() -> list[Path]:
        return files_in(local.maildir() / "new") + files_in(local.maildir() / "cur")

    kills = crash_and_rerun(home, source, account.id, delivered)
    assert kills >= 1
    assert_nothing_lost(delivered(), kills)
    home.app.db.dispose()


@pytest.mark.parametrize("protocol", [Protocol.POP3, Protocol.IMAP])
def test_sigkill_during_mda_delivery_loses_nothing(
    tmp_path: Path, dovecot: DovecotServer, protocol: Protocol
):
    store = tmp_path / "mda-store"
    store.mkdir()
    script = tmp_path / "mda.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        't="$1/.tmp.$$"\ncat > "$t"\nsync "$t"\nmv "$t" "$1/msg.$$.$(date +%s%N)"\n'
    )
    script.chmod(0o755)
    toml = f'[delivery]\nmethod = "mda"\nmda = "{script} {store}"\n'
    home = Home.create(tmp_path / "home", toml)
    source = dovecot.new_mailbox()
    for raw in corpus():
        source.deliver(raw)
    account = home.add(source, protocol)

    def delivered() -> list[Path]:
        return [p for p in files_in(store) if p.name.startswith("msg.")]

    kills = crash_and_rerun(home, source, account.id, delivered)
    assert kills >= 1
    assert_nothing_lost(delivered(), kills)
    home.app.db.dispose()


def test_sigkill_during_smtp_delivery_loses_nothing(tmp_path: Path, dovecot: DovecotServer):
    handler = Handler()
    with SmtpTestServer(handler) as smtp:
        toml = f'[delivery]\nmethod = "smtp"\nsmtp = "{smtp.address}"\n'
        home = Home.create(tmp_path / "home", toml)
        source = dovecot.new_mailbox()
        for raw in corpus():
            source.deliver(raw)
        account = home.add(source, Protocol.IMAP)

        def delivered() -> list[bytes]:
            return [message.data for message in list(handler.messages)]

        kills = crash_and_rerun(home, source, account.id, delivered)
        assert kills >= 1
        assert_nothing_lost(delivered(), kills)
        home.app.db.dispose()
