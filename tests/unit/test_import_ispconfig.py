"""ISPConfig mail_get rows: CSV and mysqldump."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import ImportFileError
from mailhaul.importers.ispconfig import parse_ispconfig

FIXTURES = Path(__file__).parent.parent / "fixtures" / "import"


def test_csv_rows():
    result = parse_ispconfig((FIXTURES / "mail_get.csv").read_text(), "mail_get.csv")
    petrov, anna = result.accounts
    assert (petrov.password, petrov.keep, petrov.security) == ('pa,ss"word', True, Security.SSL)
    assert (anna.protocol, anna.keep, anna.active, anna.fetchall) == (
        Protocol.IMAP,
        False,
        False,
        True,
    )
    assert {p.line: p.message for p in result.problems} == {
        4: "type 'ftp' is not pop3, pop3ssl, imap or imapssl",
        5: "source_password is empty",
    }


def test_mysqldump_inserts_with_escapes_and_column_lists():
    result = parse_ispconfig((FIXTURES / "mail_get.sql").read_text(), "mail_get.sql")
    petrov, anna, legacy = result.accounts
    assert petrov.password == 'it\'s a "secret"\\x'
    assert (petrov.line, anna.line, legacy.line) == (28, 29, 33)
    assert anna.password == "O'Brien;(1)"
    assert (legacy.password, legacy.security, legacy.active) == ("pl\\ain", Security.NONE, False)
    assert [p.line for p in result.problems] == [29]  # the NULL password


def test_truncated_dump_names_the_line():
    text = "INSERT INTO `mail_get` VALUES (1,1,1,'a','b','',1,'pop3','h','u','p\n"
    with pytest.raises(ImportFileError) as caught:
        parse_ispconfig(text, "dump.sql")
    assert caught.value.file == "dump.sql"
    assert "not closed" in caught.value.message


def test_csv_without_the_columns_is_refused():
    with pytest.raises(ImportFileError):
        parse_ispconfig("a,b,c\n1,2,3\n", "x.csv")
