"""Every folder, and each into its local folder, against a real Dovecot: special-use
folders, a hierarchy and a non-ASCII name on the source; the destination Maildir++ read back
by Dovecot itself as a second user's folders; LMTP's ``local+Folder@domain``; and a delivery
that cannot file into folders refusing the rules when they are set, not at run time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol
from mailhaul.domain.validation import FieldError
from support.dovecot import DovecotServer, Mailbox
from support.mailhaul_home import Home

SOURCE_FOLDERS = ["Lists/python", "Sent Items", "Spam", "Trash", "Entwürfe", "Archive"]


def filled_source(dovecot: DovecotServer) -> Mailbox:
    """A mailbox with one message in INBOX and in each of SOURCE_FOLDERS."""
    source = dovecot.new_mailbox()
    source.deliver(b"Subject: in INBOX\n\nbody\n")
    for name in SOURCE_FOLDERS:
        source.create_folder(name)
        source.deliver(f"Subject: in {name}\n\nbody\n".encode(), folder=name)
    return source


def subjects(mailbox: Mailbox, folder: str) -> list[str]:
    found = []
    for message in mailbox.list_messages(folder):
        for line in message.raw.decode().splitlines():
            if line.startswith("Subject: "):
                found.append(line.removeprefix("Subject: "))
    return sorted(found)


def give_to_dovecot(maildir: Path, dovecot: DovecotServer, owner: Mailbox) -> None:
    """Hand the Maildir mailhaul wrote (as root) to the mail user Dovecot reads as."""
    stat = owner.maildir().stat()
    for root, dirs, files in os.walk(maildir):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), stat.st_uid, stat.st_gid)


@pytest.fixture
def reader(dovecot: DovecotServer) -> Mailbox:
    """A second Dovecot user whose Maildir mailhaul delivers into."""
    return dovecot.new_mailbox()


@pytest.fixture
def home(tmp_path: Path, reader: Mailbox) -> Iterator[Home]:
    home = Home.create(tmp_path / "home", f'[delivery]\nmaildir_path = "{reader.maildir()}"\n')
    yield home
    home.app.db.dispose()


def test_every_folder_lands_in_its_local_folder_and_dovecot_reads_them(
    home: Home, dovecot: DovecotServer, reader: Mailbox
):
    source = filled_source(dovecot)
    assert source.folders()["Spam"] >= {"\\junk"}  # the source's special use is real
    rules = FolderRules(all_folders=True, exclude=("Archive",))
    account = home.add(source, Protocol.IMAP, rules=rules)
    summary = home.poll(account)
    assert (summary.result, summary.fetched) == ("ok", 4), home.log(account)
    give_to_dovecot(reader.maildir(), dovecot, reader)
    listed = reader.folders()
    # Lists (made as a parent) is a folder of its own on this Dovecot: empty, so nothing
    assert {"INBOX", "Lists/python", "Sent", "Entwürfe"} <= listed.keys()
    assert subjects(reader, "INBOX") == ["in INBOX"]
    assert subjects(reader, "Lists/python") == ["in Lists/python"]
    assert subjects(reader, "Sent") == ["in Sent Items"]  # \Sent goes to Sent
    assert subjects(reader, "Entwürfe") == ["in Entwürfe"]
    # left out: Trash and Spam (special use), Archive (excluded); still on the source
    assert "Junk" not in listed and "Trash" not in listed and "Archive" not in listed
    for name in ("Spam", "Trash", "Archive"):
        assert len(source.list_messages(name)) == 1
    assert source.list_messages("Sent Items") == []  # delivered ones deleted
    # a folder made later is picked up by the next poll; nothing is fetched twice
    source.create_folder("Later")
    source.deliver(b"Subject: in Later\n\nbody\n", folder="Later")
    assert home.poll(account).fetched == 1, home.log(account)
    give_to_dovecot(reader.maildir(), dovecot, reader)
    assert subjects(reader, "Later") == ["in Later"]


def test_include_map_and_into(home: Home, dovecot: DovecotServer, reader: Mailbox):
    source = filled_source(dovecot)
    rules = FolderRules(
        all_folders=True,
        include=("Spam",),
        exclude=("Archive", "Lists/*", "Entw*"),
        mapping=(("Sent Items", "Sent/old"),),
        into="Fetched/src",
    )
    account = home.add(source, Protocol.IMAP, rules=rules)
    summary = home.poll(account)
    assert (summary.result, summary.fetched) == ("ok", 3), home.log(account)
    give_to_dovecot(reader.maildir(), dovecot, reader)
    assert subjects(reader, "Fetched/src") == ["in INBOX"]  # --into holds INBOX too
    assert subjects(reader, "Sent/old") == ["in Sent Items"]  # --map is where it says
    assert subjects(reader, "Junk") == ["in Spam"]  # the \Junk home, included by name
    assert subjects(reader, "INBOX") == []


def test_lmtp_files_folders_through_detail(tmp_path: Path, dovecot: DovecotServer):
    home = Home.create(
        tmp_path / "home",
        f'[delivery]\nmethod = "lmtp"\nlmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
        'lmtp_folder_detail = "+"\n',
    )
    try:
        source, local = filled_source(dovecot), dovecot.new_mailbox()
        account = home.add(
            source, Protocol.IMAP, deliver_to=local.user, folders=("INBOX", "Sent Items")
        )
        assert home.poll(account).fetched == 2, home.log(account)
        assert subjects(local, "Sent") == ["in Sent Items"]
        assert subjects(local, "INBOX") == ["in INBOX"]
    finally:
        home.app.db.dispose()


def test_lmtp_folder_names_travel_as_one_address_or_not_at_all(
    tmp_path: Path, dovecot: DovecotServer
):
    """Folder names are the source server's: a space travels quoted
    (``"ann+My Folder"@…``), a name with ``>`` cannot add parameters to RCPT, and a name
    outside ASCII, which Dovecot's LMTP (no SMTPUTF8) cannot take, lands in the mailbox
    itself: nothing is refused and left on the server for ever."""
    home = Home.create(
        tmp_path / "home",
        f'[delivery]\nmethod = "lmtp"\nlmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
        'lmtp_folder_detail = "+"\n',
    )
    try:
        source, local = dovecot.new_mailbox(), dovecot.new_mailbox()
        names = ["My Folder", "a> NOTIFY=NEVER", "Entwürfe", "Plain"]
        for name in names:
            source.create_folder(name)
            source.deliver(f"Subject: in {name}\n\nbody\n".encode(), folder=name)
        account = home.add(source, Protocol.IMAP, deliver_to=local.user, folders=tuple(names))
        summary = home.poll(account)
        assert (summary.result, summary.fetched) == ("ok", 4), home.log(account)
        assert subjects(local, "Plain") == ["in Plain"]  # the positive control
        assert subjects(local, "My Folder") == ["in My Folder"]
        assert subjects(local, "a> NOTIFY=NEVER") == ["in a> NOTIFY=NEVER"]
        assert subjects(local, "INBOX") == ["in Entwürfe"]
    finally:
        home.app.db.dispose()


def test_a_delivery_without_folders_refuses_folder_rules_when_they_are_set(
    tmp_path: Path, dovecot: DovecotServer
):
    home = Home.create(tmp_path / "home", '[delivery]\nmethod = "mda"\nmda = "/bin/true"\n')
    try:
        source = dovecot.new_mailbox()
        with pytest.raises(FieldError) as caught:
            home.add(source, Protocol.IMAP, rules=FolderRules(into="Fetched"))
        assert caught.value.field == "into"
        assert "cannot choose a folder" in caught.value.message
        # positive control: every folder into the mailbox itself is fine there
        home.add(source, Protocol.IMAP, rules=FolderRules(all_folders=True))
    finally:
        home.app.db.dispose()
