"""Which folders --all-folders takes and where each folder's mail lands (pure)."""

from __future__ import annotations

import pytest

from mailhaul.adapters.sinks.maildir import maildir_folder_name
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.folders import (
    FolderRules,
    RemoteFolder,
    checked_rules,
    chosen,
    local_name,
    matches,
    named,
    parse_mapping,
)


def folder(name: str, *attributes: str, separator: str = "/") -> RemoteFolder:
    return RemoteFolder(name, separator, frozenset(a.lower() for a in attributes))


DOVECOT = [
    folder("Archive", "\\Archive"),
    folder("Drafts", "\\Drafts"),
    folder("INBOX"),
    folder("Junk", "\\Junk"),
    folder("Lists", "\\Noselect"),
    folder("Lists/python"),
    folder("Lists/python/announce"),
    folder("Sent Items", "\\Sent"),
    folder("Trash", "\\Trash"),
    folder("Entwürfe"),
]
GMAIL = [
    folder("INBOX"),
    folder("[Gmail]", "\\Noselect"),
    folder("[Gmail]/All Mail", "\\All"),
    folder("[Gmail]/Spam", "\\Junk"),
    folder("[Gmail]/Sent Mail", "\\Sent"),
    folder("[Gmail]/Trash", "\\Trash"),
    folder("Work"),
]


def names(folders: list[RemoteFolder]) -> list[str]:
    return [f.name for f in folders]


def test_all_folders_leaves_out_trash_junk_drafts_all_and_unselectable_ones():
    rules = FolderRules(all_folders=True)
    assert names(chosen(DOVECOT, rules)) == [
        "INBOX",
        "Archive",
        "Lists/python",
        "Lists/python/announce",
        "Sent Items",
        "Entwürfe",
    ]
    assert names(chosen(GMAIL, rules)) == ["INBOX", "[Gmail]/Sent Mail", "Work"]


def test_include_brings_a_left_out_folder_back_and_exclude_drops_by_pattern():
    rules = FolderRules(all_folders=True, include=("Junk",), exclude=("Lists/%",))
    # % stops at the separator: Lists/python/announce is not matched by Lists/%
    assert names(chosen(DOVECOT, rules)) == [
        "INBOX",
        "Archive",
        "Junk",
        "Lists/python/announce",
        "Sent Items",
        "Entwürfe",
    ]
    every = FolderRules(all_folders=True, exclude=("Lists/*", "inbox"))
    assert "Lists/python/announce" not in names(chosen(DOVECOT, every))
    assert "INBOX" not in names(chosen(DOVECOT, every))  # INBOX in any case


def test_patterns_follow_list_wildcards():
    assert matches("*", folder("a/b/c"))
    assert matches("a/%", folder("a/b"))
    assert not matches("a/%", folder("a/b/c"))
    assert matches("a/*", folder("a/b/c"))
    assert not matches("a.b", folder("axb"))  # a dot is a dot, not any character
    assert matches("[Gmail]/*", folder("[Gmail]/Spam"))


def test_each_remote_folder_lands_in_the_local_folder_of_its_name():
    rules = FolderRules()
    assert rules.local_for(folder("INBOX")) is None  # the mailbox itself
    assert rules.local_for(folder("Lists/python")) == "Lists/python"
    assert rules.local_for(folder("Lists.python", separator=".")) == "Lists/python"
    # Courier and Cyrus keep everything under INBOX.
    assert rules.local_for(folder("INBOX.Sent", separator=".")) == "Sent"
    assert rules.local_for(folder("Entwürfe")) == "Entwürfe"
    # a dot inside a level is not a level of the local side
    assert rules.local_for(folder("example.org/news")) == "example_org/news"


def test_special_use_homes_map_and_into():
    rules = FolderRules()
    assert rules.local_for(folder("[Gmail]/Spam", "\\Junk")) == "Junk"
    assert rules.local_for(folder("Sent Items", "\\Sent")) == "Sent"
    assert rules.local_for(folder("Old", "\\Archive")) == "Archive"
    off = FolderRules(special_use_map=False)
    assert off.local_for(folder("Sent Items", "\\Sent")) == "Sent Items"
    mapped = FolderRules(mapping=(("[Gmail]/Spam", "Spam/gmail"), ("Work", "")), into="gm")
    assert mapped.local_for(folder("[Gmail]/Spam", "\\Junk")) == "Spam/gmail"  # --map wins
    assert mapped.local_for(folder("Work")) is None  # mapped to the mailbox itself
    assert mapped.local_for(folder("INBOX")) == "gm"  # --into holds the rest, INBOX too
    assert mapped.local_for(folder("Lists/python")) == "gm/Lists/python"
    assert mapped.local_for(folder("Sent Items", "\\Sent")) == "Sent"


def test_a_delivery_without_folders_lands_everything_in_the_mailbox():
    rules = FolderRules(into="gm", mapping=(("Sent", "Sent"),))
    assert rules.asks_for_folders
    assert rules.local_for(folder("Sent"), files_folders=False) is None
    assert not FolderRules(all_folders=True, mapping=(("Sent", ""),)).asks_for_folders


def test_local_names_and_maps_are_checked():
    assert local_name(" Fetched/gmail ") == "Fetched/gmail"
    assert local_name("Fetched.gmail") == "Fetched/gmail"
    for bad in ("", "a//b", "/a", "INBOX", "a\\b", "a*", "x\x01"):
        with pytest.raises(ConfigError):
            local_name(bad)
    assert parse_mapping("[Gmail]/Spam=Junk") == ("[Gmail]/Spam", "Junk")
    assert parse_mapping("a=b=c") == ("a=b", "c")
    assert parse_mapping("Sent=") == ("Sent", "")
    with pytest.raises(ConfigError, match="REMOTE=LOCAL"):
        parse_mapping("Sent")
    tidy = checked_rules(FolderRules(mapping=(("Sent", "Sent.old"),), into="x/y"))
    assert tidy.mapping == (("Sent", "Sent/old"),) and tidy.into == "x/y"
    with pytest.raises(ConfigError):
        checked_rules(FolderRules(include=("",)))
    with pytest.raises(ConfigError, match=r"^map: "):
        checked_rules(FolderRules(mapping=(("a", "x"), ("a", "y"))))


def test_rules_survive_their_stored_form():
    rules = FolderRules(True, ("Junk",), ("Lists/*",), (("a", "b"), ("c", "")), "x", False)
    assert FolderRules.from_dict(rules.as_dict()) == rules
    assert FolderRules.from_dict({}) == FolderRules()
    with pytest.raises(ConfigError):
        FolderRules.from_dict({"map": [["only one"]]})


def test_a_fixed_list_keeps_its_names_and_learns_what_the_server_says():
    got = named(["INBOX", "Sent Items", "Gone"], DOVECOT)
    assert [f.special_use for f in got] == [None, "\\sent", None]
    assert names(got) == ["INBOX", "Sent Items", "Gone"]


def test_maildir_plus_plus_names_as_dovecot_and_courier_store_them():
    assert maildir_folder_name("Sent") == ".Sent"
    assert maildir_folder_name("Lists/python") == ".Lists.python"
    assert maildir_folder_name("Entwürfe") == ".Entw&APw-rfe"
    assert maildir_folder_name("R&D") == ".R&-D"
    for bad in ("", "a//b", ".."):
        with pytest.raises(ConfigError):
            maildir_folder_name(bad)


def test_all_mail_comes_last_when_it_is_included():
    rules = FolderRules(all_folders=True, include=("[Gmail]/All Mail",))
    assert names(chosen(GMAIL, rules)) == ["INBOX", "[Gmail]/Sent Mail", "Work", "[Gmail]/All Mail"]


def test_a_map_may_name_folders_by_pattern_and_the_exact_name_wins():
    rules = FolderRules(mapping=(("Lists/*", "Lists"), ("Lists/python", "Python"), ("*", "")))
    assert rules.local_for(folder("Lists/python")) == "Python"
    assert rules.local_for(folder("Lists/rust")) == "Lists"
    assert rules.local_for(folder("Sent Items", "\\Sent")) is None  # '*=' : all flat


def test_a_date_header_no_calendar_holds_is_no_date():
    from mailhaul.domain.messages import header_date

    assert str(header_date(b"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\n")) == "2026-03-02"
    for bad in (b"Mon, 1 Jan 99999999999 00:00:00 +0000", b"x", b"Mon, 1 Jan 2020 99:00:00 +0000"):
        assert header_date(b"Subject: s\r\nDate: " + bad + b"\r\n\r\nbody") is None
    assert header_date(b"Subject: no date\r\n\r\nDate: in the body\r\n") is None
