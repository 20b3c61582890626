"""The fetchmailrc importer on a realistic file, checked against fetchmail's own reading."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import ImportFileError
from mailhaul.importers.fetchmailrc import parse_fetchmailrc
from mailhaul.importers.fetchmailrc_lex import unescape

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"
RC = FIXTURES / "fetchmailrc"


def parsed():
    return parse_fetchmailrc(RC.read_text(), "fetchmailrc")


def by_user(name: str):
    [account] = [a for a in parsed().accounts if a.username == name]
    return account


def test_poll_via_defaults_and_two_users_on_one_server():
    petrov, sales = by_user("i.petrov"), by_user("sales@provider.example")
    for account in (petrov, sales):
        assert account.host == "pop.provider.example"  # via, not the poll label
        assert account.protocol is Protocol.POP3
        assert account.port == 995
        assert account.security is Security.SSL
        assert account.interval == 300  # set daemon
    assert (petrov.keep, petrov.fetchall) == (True, True)  # keep from `defaults`
    assert petrov.deliver_to == "i.petrov@mydomain.test"
    assert petrov.password == "Tr0ub4dor&3"
    assert (sales.keep, sales.max_size) == (False, 2048000)  # nokeep, limit


def test_keep_fetchall_is_mapped_with_a_note():
    [note] = [n for n in by_user("i.petrov").notes if "keep + fetchall" in n]
    assert note.startswith("fetchmailrc:18:")


def test_escapes_and_line_continuation_as_fetchmail_reads_them():
    assert by_user("anna").password == "back\\slash \b1A5e"
    assert by_user("u2").password == "first-second"
    assert by_user("oldbox").password == "old#notacomment"


def test_backslash_quote_keeps_the_quotes_like_fetchmail_and_says_so():
    assert by_user("sales@provider.example").password == '"quote"inside"'
    assert any("fetchmailrc:19:" in n and "quotes are part" in n for n in parsed().global_notes)


def test_imap_folders_ssl_cafile_and_flush():
    anna = by_user("anna")
    assert anna.protocol is Protocol.IMAP
    assert anna.folders == ("INBOX", "Sent Items", "Archive")
    assert anna.ca_file == "/etc/ssl/certs/ca-certificates.crt"
    assert (anna.keep, anna.flush, anna.port) == (False, True, 993)


def test_skip_entry_is_imported_off_and_unsupported_options_are_reported_by_line():
    old = by_user("oldbox")
    assert old.active is False
    assert old.security is Security.STARTTLS
    assert any(n.startswith("fetchmailrc:34: `mda` is not supported") for n in old.notes)
    assert any(n.startswith("fetchmailrc:35: `preconnect` is not supported") for n in old.notes)


def test_multidrop_is_skipped_with_its_reason():
    catchall = by_user("catchall")
    assert catchall.skip is not None and "multidrop" in catchall.skip
    assert catchall.line == 39
    assert any(n.startswith("fetchmailrc:40: `smtphost`") for n in catchall.notes)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('poll a.example proto pop3\n user x pass "open\n', 2, "unterminated"),
        ("poll a.example proto pop3 port\n  abc user x pass y", 2, "needs a number"),
        ("defaults keep\n\nbogus a.example", 3, "unexpected 'bogus'"),
        ("poll a.example proto pop3 user", 1, "file ends"),
        ("poll a.example proto pop3 is x here", 1, "before any `user`"),
    ],
)
def test_malformed_file_names_file_and_line(text: str, line: int, words: str):
    with pytest.raises(ImportFileError) as caught:
        parse_fetchmailrc(text, "rc")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"rc:{line}:")
    assert words in str(caught.value)


def test_unescape_forms():
    assert unescape(r"a\tb\nc\\d\"e\qf") == 'a\tb\nc\\d"eqf'
    assert unescape(r"\x41\x4a\101\0101") == "AJe\b1"


def test_entry_without_user_is_a_problem_not_a_crash():
    result = parse_fetchmailrc("poll a.example proto pop3 keep\n", "rc")
    assert not result.accounts
    assert result.problems[0].line == 1


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")
def test_same_reading_as_fetchmail_configdump(tmp_path: Path):
    rc = tmp_path / "rc"
    rc.write_text(RC.read_text())
    rc.chmod(0o600)
    env = {**os.environ, "HOME": str(tmp_path)}
    out = subprocess.run(
        ["fetchmail", "-f", str(rc), "--configdump"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    body = out.split("fetchmailrc = ", 1)[1]
    dump = ast.literal_eval(body.replace("TRUE", "True").replace("FALSE", "False"))
    theirs = {
        user["remote"]: (user["password"], user["keep"], user["fetchall"], user["flush"])
        for server in dump["servers"]
        for user in server["users"]
    }
    ours = {a.username: (a.password, a.keep, a.fetchall, a.flush) for a in parsed().accounts}
    assert ours == theirs


UTF7_RC = """\
poll imap.example.net proto imap user anna pass "pw" is anna here ssl
    folder INBOX "INBOX.&BB8EQAQ4BDIENQRC-" "INBOX.Caf&AOk- &- Co" Archive
"""


def test_modified_utf7_folder_names_are_stored_as_unicode_and_said_so_by_line():
    [anna] = parse_fetchmailrc(UTF7_RC, "rc").accounts
    assert anna.folders == ("INBOX", "INBOX.Привет", "INBOX.Café & Co", "Archive")
    assert sorted(n for n in anna.notes if "modified UTF-7" in n) == [
        "rc:2: folder 'INBOX.&BB8EQAQ4BDIENQRC-' read as modified UTF-7: 'INBOX.Привет'",
        "rc:2: folder 'INBOX.Caf&AOk- &- Co' read as modified UTF-7: 'INBOX.Café & Co'",
    ]


@pytest.mark.parametrize(
    "written",
    [
        "R&D",  # no terminating '-'
        "Q&A-",  # 'A' is not base64 of UTF-16
        "&AGE-",  # 'a' shifted: not the canonical form of any name
        "&AOk-&AOk-",  # two adjacent shifted runs: not canonical
        "&ABA-",  # decodes to a control character
        "Входящие",  # UTF-8 as written, no '&'
        "Sent Items",
    ],
)
def test_folder_names_that_are_not_modified_utf7_stay_as_written(written: str):
    rc = f'poll h.example proto imap user u pass "pw" is u here ssl folder "{written}"\n'
    [account] = parse_fetchmailrc(rc, "rc").accounts
    assert account.folders == (written,)
    assert not [n for n in account.notes if "UTF-7" in n]


def test_modified_utf7_folders_on_pop3_are_ignored_without_decoding():
    rc = UTF7_RC.replace("proto imap", "proto pop3")
    [account] = parse_fetchmailrc(rc, "rc").accounts
    assert account.folders == ("INBOX",)
    assert not [n for n in account.notes if "UTF-7" in n]


def test_fetchlimit_becomes_a_per_run_limit():
    text = (
        "poll imap.provider.example protocol imap\n"
        "  user 'petrov' there with password 'pw' is 'i.petrov@mydomain.test' here\n"
        "  fetchlimit 50\n"
    )
    [account] = parse_fetchmailrc(text, "rc").accounts
    assert account.max_messages_per_run == 50
    assert not any("fetchlimit" in note for note in account.notes)
