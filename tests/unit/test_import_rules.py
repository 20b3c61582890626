"""The panel rules importer (Ideco's fetchmail rules)."""

from __future__ import annotations

from pathlib import Path

from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.rules import parse_rules, split_fields

RULES = Path(__file__).parent.parent / "fixtures" / "import" / "rules.txt"


def test_rules_file_accounts_and_malformed_lines_with_line_numbers():
    result = parse_rules(RULES.read_text(), "rules.txt")
    first, second, third = result.accounts
    assert (first.host, first.protocol, first.username) == (
        "pop.provider.example",
        Protocol.POP3,
        "i.petrov",
    )
    assert (first.password, first.deliver_to) == ("Tr0ub4dor&3", "i.petrov@mydomain.test")
    assert (first.keep, first.security, first.line) == (True, Security.SSL, 2)
    assert second.password == "pass with spaces"
    assert (second.keep, second.fetchall, second.protocol) == (True, True, Protocol.IMAP)
    assert (third.port, third.password, third.security) == (110, 'q"uote#hash', Security.STARTTLS)
    problems = {p.line: p.message for p in result.problems}
    assert set(problems) == {7, 8, 9}
    assert "3 field(s)" in problems[7]
    assert "server:proto" in problems[8]
    assert "sometimes" in problems[9]


def test_split_fields_comments_and_quotes():
    assert split_fields('a "b c" d#e # comment') == ["a", "b c", "d#e"]
    assert split_fields("   # only a comment") == []


def test_check_flags_nethservers_filtercheck_included():
    text = (
        "pop.a.example:pop3 u1 p1 a@mydomain.test ssl antispam\n"
        "pop.a.example:pop3 u2 p2 b@mydomain.test ssl junk antivirus\n"
        "pop.a.example:pop3 u3 p3 c@mydomain.test ssl filtercheck\n"
        "pop.a.example:pop3 u4 p4 d@mydomain.test ssl\n"
    )
    first, second, third, fourth = parse_rules(text, "rules").accounts
    assert first.filters == FilterOptions(SpamAction.TAG, VirusAction.OFF)
    assert second.filters == FilterOptions(SpamAction.JUNK, VirusAction.QUARANTINE)
    assert third.filters == FilterOptions(SpamAction.TAG, VirusAction.QUARANTINE)
    assert fourth.filters is None  # the server's default for new accounts
