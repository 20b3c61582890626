"""The tokens of a fetchmail run-control file, read the way fetchmail's own lexer reads them.

fetchmail's lexer (flex, longest match) has quirks that a migration must reproduce, because
the values fetchmail actually used are the ones that work:

- a quoted string runs to the next double quote (or single quote); there is no ``\\"``
  inside one. A token such as ``"p\\"q"`` is read as an *unquoted* string because that rule
  matches more characters, so its quotes stay in the value (we note when that happens);
- escapes apply to every string: ``\\n \\t \\b \\r``, ``\\\\``, ``\\<LF>`` (joins lines),
  ``\\nnn`` decimal (up to 3 digits), ``\\0oo`` octal (the 0 counts among 3 digits),
  ``\\xhh`` hex; any other ``\\c`` is ``c``;
- ``#`` starts a comment only where a token starts; ``, ; :`` are noise; ``=`` maps names;
- after ``user``, ``pass``, ``is``, ``to`` and ``=``, the next word is a name even if it
  looks like a keyword or a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhaul.importers.common import ImportFileError


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``."""
    return frozenset(text.split())


_KEYWORDS: dict[str, str] = {}
for _pattern, _name in [
    (r"set|logfile|idfile|pidfile|daemon|syslog|invisible|showdots|postmaster", ""),
    (r"bouncemail|spambounce|softbounce|warnings|tracepolls|defaults|poll|skip|via|aka", ""),
    (r"service|port|interval|timeout|idletimeout|envelope|qvirtual|principal|esmtpname", ""),
    (r"esmtppassword|bad-header|accept|reject|fetchdomains|smtpaddress|smtpname|antispam", ""),
    (r"mda|bsmtp|lmtp|interface|monitor|plugin|plugout|batchlimit|fetchlimit", ""),
    (r"fetchsizelimit|fastuidl|expunge|properties|is|here|there|to|no|keep|flush", ""),
    (r"limitflush|fetchall|rewrite|forcecr|stripcr|dropstatus|dropdelivered|idle", ""),
    (r"forceidle|dns|uidl|ssl|sslkey|sslcert|sslproto|sslcertck|sslcertfile", ""),
    (r"sslcertpath|sslcommonname|sslfingerprint|checkalias|limit|sdps|kpop", ""),
]:
    for _word in _pattern.split("|"):
        _KEYWORDS[_word] = _word
_KEYWORDS |= {
    "server": "poll",
    "user": "user",
    "username": "user",
    "pass": "password",
    "password": "password",
    "folder": "folder",
    "folders": "folder",
    "proto": "protocol",
    "protocol": "protocol",
    "local": "localdomains",
    "localdomains": "localdomains",
    "smtp": "smtphost",
    "smtphost": "smtphost",
    "pre": "preconnect",
    "preconnect": "preconnect",
    "post": "postconnect",
    "postconnect": "postconnect",
    "pass8": "pass8bits",
    "pass8bits": "pass8bits",
    "mimedec": "mimedecode",
    "mimedecode": "mimedecode",
    "auth": "auth",
    "authenticate": "auth",
    "preauth": "auth",
    "preauthenticate": "auth",
    "sdps": "sdps",
    "kpop": "kpop",
}
_NOISE = frozenset({"with", "and", "has", "wants", "options"})
_PROTOCOLS = frozenset({"auto", "pop2", "pop3", "imap", "apop", "rpop", "etrn", "odmr"})
# fetchmail splits these into NO + keyword.
_NO_WORDS = words(
    "nobouncemail nouidl nocheckalias nodns noenvelope nokeep noflush nolimitflush nofetchall "
    "norewrite noforcecr nostripcr nopass8 nopass8bits nodropstatus nodropdelivered nomimedec "
    "nomimedecode nospambounce noidle noforceidle"
)
_NAME_STARTERS = frozenset({"user", "password", "is", "to"})
_UNQUOTED = re.compile(r"[^=;:, \t\r\n]+")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_NUMBER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Token:
    """One token: kind is ``keyword``, ``proto``, ``string``, ``number`` or ``map``."""

    kind: str
    value: str
    line: int
    quirk: str = ""  # a note on how fetchmail reads this token

    @property
    def number(self) -> int:
        """The value of a number token."""
        return int(self.value)


def unescape(text: str) -> str:
    """fetchmail's escape processing (see the module docstring)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 >= n:
            if ch != "\\":
                out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in "xX":
            j, value = i + 2, 0
            while j < n and j < i + 4 and text[j] in "0123456789abcdefABCDEF":
                value = value * 16 + int(text[j], 16)
                j += 1
        elif nxt == "0":
            j, value = i + 1, 0
            while j < n and j < i + 4 and text[j] in "01234567":
                value = value * 8 + int(text[j])
                j += 1
        elif nxt.isdigit():
            j, value = i + 1, 0
            while j < n and j < i + 4 and text[j].isdigit():
                value = value * 10 + int(text[j])
                j += 1
        else:
            if nxt != "\n":
                out.append({"n": "\n", "t": "\t", "b": "\b", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        out.append(chr(value))
        i = j
    return "".join(out)


def tokenize(text: str, file: str) -> list[Token]:
    """The tokens of a fetchmailrc; ImportFileError on an unterminated quoted string."""
    tokens: list[Token] = []
    pos, line, n = 0, 1, len(text)
    name_next = False
    while pos < n:
        ch = text[pos]
        if ch == "\n":
            line += 1
            pos += 1
            continue
        if ch in " \t\r;:,":
            pos += 1
            continue
        if ch == "\\" and text.startswith("\\\n", pos):
            line += 1
            pos += 2
            continue
        if ch == "#":
            end = text.find("\n", pos)
            pos = n if end < 0 else end
            continue
        quoted = _QUOTED.match(text, pos)
        unquoted = _UNQUOTED.match(text, pos)
        if ch in "\"'" and quoted is None:
            raise ImportFileError(file, line, f"unterminated quoted string starting with {ch}")
        if ch == "=":
            tokens.append(Token("map", "=", line))
            name_next = True
            pos += 1
            continue
        if quoted is not None and (unquoted is None or quoted.end() >= unquoted.end()):
            raw = quoted.group()
            tokens.append(Token("string", unescape(raw[1:-1]), line))
            line += raw.count("\n")
            pos = quoted.end()
            name_next = False
            continue
        assert unquoted is not None
        word = unquoted.group()
        pos = unquoted.end()
        quirk = ""
        if word[0] in "\"'":
            quirk = (
                f"{word} is read as fetchmail reads it: a backslash does not end a quoted "
                "string, so the quotes are part of the value"
            )
        if name_next:
            tokens.append(Token("string", unescape(word), line, quirk))
            name_next = False
            continue
        lower = word.lower() if word.lower() == word or word.upper() == word else ""
        if lower in _PROTOCOLS:
            tokens.append(Token("proto", lower, line))
        elif _NUMBER.fullmatch(word):
            tokens.append(Token("number", word, line))
        elif word in _NOISE:
            pass
        elif word in _NO_WORDS:
            tokens.append(Token("keyword", "no", line))
            tokens.append(Token("keyword", _KEYWORDS[word[2:]], line))
        elif word in _KEYWORDS:
            keyword = _KEYWORDS[word]
            tokens.append(Token("keyword", keyword, line))
            name_next = keyword in _NAME_STARTERS
        else:
            tokens.append(Token("string", unescape(word), line, quirk))
    return tokens
