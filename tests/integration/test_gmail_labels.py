"""A scripted Gmail-like server (X-GM-EXT-1, labels as folders, ``[Gmail]/All Mail``): each
message is delivered once per account, into the first folder polled that holds it, whatever
the folder set; its copies under other labels are recorded, not delivered."""

from __future__ import annotations

from pathlib import Path

from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol
from support.scripted_home import ScriptedHome, make_scripted_home
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer


def mail(gm: int) -> Message:
    return Message(0, f"Subject: gmail {gm}\r\n\r\nbody {gm}\r\n".encode(), gm_msgid=gm)


def folder(attributes: str, *ids: int) -> Mailbox:
    messages = [Message(uid, mail(gm).body, gm_msgid=gm) for uid, gm in enumerate(ids, 1)]
    return Mailbox(len(ids) + 100, messages, attributes)


def gmail(gmail_ext: bool = True) -> ImapScript:
    return ImapScript(
        folders={
            "INBOX": folder("\\HasNoChildren", 1001, 1002),
            "Work": folder("\\HasNoChildren", 1002),
            "[Gmail]": Mailbox(1, [], "\\Noselect \\HasChildren"),
            "[Gmail]/All Mail": folder("\\All \\HasNoChildren", 1001, 1002, 1003, 1004),
            "[Gmail]/Sent Mail": folder("\\Sent \\HasNoChildren", 1004),
            "[Gmail]/Spam": folder("\\Junk \\HasNoChildren", 1005),
        },
        extra_caps=("X-GM-EXT-1",) if gmail_ext else (),
    )


def subjects(home: ScriptedHome, where: str | None = None) -> list[bytes]:
    return sorted(raw.split(b"\r\n", 1)[0] for raw in home.delivered(where))


def poll(tmp_path: Path, script: ImapScript, rules: FolderRules) -> tuple[ScriptedHome, int]:
    home = make_scripted_home(tmp_path)
    with ScriptedImapServer(script) as server:
        account = home.account(Protocol.IMAP, server.port, "user", "secret", keep=True, rules=rules)
        first = home.poll(account)
        assert first.result == "ok", home.log(account)
        again = home.poll(account)
        assert again.fetched == 0, home.log(account)
    return home, first.fetched


def test_each_message_once_with_every_folder_and_all_mail(tmp_path: Path):
    rules = FolderRules(all_folders=True, include=("[Gmail]/All Mail",))
    home, fetched = poll(tmp_path, gmail(), rules)
    assert fetched == 4  # 1001..1004, each once; Spam left out
    assert subjects(home) == [b"Subject: gmail 1001", b"Subject: gmail 1002"]  # INBOX first
    assert subjects(home, "Sent") == [b"Subject: gmail 1004"]  # Sent before All Mail
    assert subjects(home, "Work") == []  # 1002 came from INBOX already
    # All Mail comes last and gives only what no label holds (archived mail)
    assert subjects(home, "[Gmail]/All Mail") == [b"Subject: gmail 1003"]
    home.app.db.dispose()


def test_the_order_given_decides_where_a_message_lands(tmp_path: Path):
    rules = FolderRules(mapping=(("Work", "Work"),))
    script = gmail()
    home = make_scripted_home(tmp_path)
    with ScriptedImapServer(script) as server:
        account = home.account(
            Protocol.IMAP, server.port, "user", "secret", keep=True, rules=rules,
            folders=("Work", "INBOX"),
        )  # fmt: skip
        assert home.poll(account).fetched == 2, home.log(account)
        assert "delivered already from another label" in home.log(account)
        assert "per-run limit" not in home.log(account)  # copies are no limit reached
    assert subjects(home, "Work") == [b"Subject: gmail 1002"]
    assert subjects(home) == [b"Subject: gmail 1001"]
    home.app.db.dispose()


def test_without_x_gm_ext_1_every_copy_is_its_own_message(tmp_path: Path):
    """Positive control: the same folders on a server without Gmail's extension."""
    rules = FolderRules(all_folders=True, include=("[Gmail]/All Mail",))
    home, fetched = poll(tmp_path, gmail(gmail_ext=False), rules)
    assert fetched == 8  # INBOX 2 + Work 1 + All Mail 4 + Sent 1
    home.app.db.dispose()
