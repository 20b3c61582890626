"""Parsing the old tools' state: fetchmail's .fetchids and getmail's oldmail files."""

from __future__ import annotations

from mailhaul.importers.state import oldmail_filename, parse_fetchids, parse_oldmail


def test_fetchids_user_with_at_sign_and_malformed_lines():
    text = (
        "i.petrov@pop.example 000000017c4e2a91\n"
        "sales@provider.example@pop.example <abc@x> trailing\n"
        "  i.petrov@POP.example 000000027c4e2a91\n"
        "garbage\n"
    )
    entries, problems = parse_fetchids(text, ".fetchids")
    petrov, sales = entries
    assert (petrov.user, petrov.host, petrov.uids) == (
        "i.petrov",
        "pop.example",
        ["000000017c4e2a91", "000000027c4e2a91"],
    )
    assert (sales.user, sales.uids) == ("sales@provider.example", ["<abc@x>"])
    assert [p.line for p in problems] == [4]


def test_oldmail_names_like_getmail():
    assert oldmail_filename("pop.x", 995, "a/b:c") == "oldmail-pop.x-995-a-b-c"
    assert oldmail_filename("imap.x", 993, "u", "INBOX/Work") == "oldmail-imap.x-993-u-INBOX.Work"


def test_oldmail_pop3_and_imap_contents():
    seen, problems = parse_oldmail("uidl-1\x001700000000\nuidl-2\x001700000001\nbad\n", "f", False)
    assert seen.by_uidvalidity == {0: ["uidl-1", "uidl-2"]}
    assert [p.line for p in problems] == [3]
    text = "5/1\x00100\n5/2\x00100\n7/1\x00200\n7/INBOX/2\x00200\nx/y\x00100\n"
    seen, problems = parse_oldmail(text, "f", True)
    assert seen.by_uidvalidity == {5: ["1", "2"], 7: ["1", "2"]}
    assert seen.latest_uidvalidity == 7
    assert len(problems) == 1
