"""`mailhaul import rules`: one account per line, the panel format of Ideco's fetchmail rules.

    server:proto user password local@domain [keep] [ssl] [fetchall] [flush]
        [antispam|junk] [antivirus] [filtercheck]

``antispam`` tags spam, ``junk`` also files it into Junk, ``antivirus`` quarantines infected
mail; ``filtercheck`` is both checks (NethServer's per-account ``FilterCheck``). ``proto`` is
pop3 or imap (``server:port:proto`` names a port too). Fields are separated by
blanks; a field with blanks or a leading ``#`` goes in double quotes (``\\"`` and ``\\\\``
inside). ``#`` at the start of a line or after a blank starts a comment.
"""

from __future__ import annotations

from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.options import Protocol, Security
from mailhaul.importers.common import (
    KEEP_FETCHALL_NOTE,
    STARTTLS_NOTE,
    ImportedAccount,
    ImportProblem,
    ParseResult,
)

_FLAGS = ("keep", "ssl", "fetchall", "flush", "antispam", "junk", "antivirus", "filtercheck")
_PROTOCOLS = {
    "pop3": (Protocol.POP3, None),
    "pop": (Protocol.POP3, None),
    "imap": (Protocol.IMAP, None),
    "imap4": (Protocol.IMAP, None),
    "pop3s": (Protocol.POP3, Security.SSL),
    "imaps": (Protocol.IMAP, Security.SSL),
}


def split_fields(line: str) -> list[str]:
    """Blank-separated fields with double quotes and ``#`` comments; ValueError if unbalanced."""
    fields: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] == "#":
            break
        if line[i] == '"':
            out: list[str] = []
            i += 1
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n and line[i + 1] in '"\\':
                    i += 1
                out.append(line[i])
                i += 1
            if i >= n:
                raise ValueError("a quoted field is not closed")
            fields.append("".join(out))
            i += 1
            continue
        start = i
        while i < n and not line[i].isspace():
            i += 1
        fields.append(line[start:i])
    return fields


def _server(field: str) -> tuple[str, int | None, Protocol, Security | None]:
    host, sep, proto = field.rpartition(":")
    if not sep or proto.lower() not in _PROTOCOLS:
        raise ValueError(f"{field!r} is not server:proto (proto is pop3 or imap)")
    port: int | None = None
    head, sep, tail = host.rpartition(":")
    if sep and tail.isdigit() and not head.endswith(":"):
        host, port = head, int(tail)
    if not host:
        raise ValueError(f"{field!r} names no server")
    protocol, security = _PROTOCOLS[proto.lower()]
    return host.strip("[]"), port, protocol, security


def _filters(flags: list[str]) -> FilterOptions | None:
    """The checks a line's flags ask for; None (the server's default) when none."""
    both = "filtercheck" in flags
    spam = SpamAction.JUNK if "junk" in flags else SpamAction.TAG
    if not (both or "antispam" in flags or "junk" in flags or "antivirus" in flags):
        return None
    return FilterOptions(
        spam if both or "antispam" in flags or "junk" in flags else SpamAction.OFF,
        VirusAction.QUARANTINE if both or "antivirus" in flags else VirusAction.OFF,
    )


def parse_rules(text: str, file: str) -> ParseResult:
    """Accounts of a rules file; each malformed line is a problem, the rest is imported."""
    result = ParseResult()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            fields = split_fields(line)
            if not fields:
                continue
            if len(fields) < 4:
                raise ValueError(
                    f"{len(fields)} field(s); expected server:proto user password local@domain"
                )
            host, port, protocol, security = _server(fields[0])
            flags = [f.lower() for f in fields[4:]]
            unknown = [f for f in flags if f not in _FLAGS]
            if unknown:
                raise ValueError(
                    f"unknown option(s) {' '.join(unknown)} (known: {' '.join(_FLAGS)})"
                )
        except ValueError as exc:
            result.problems.append(ImportProblem(file, number, str(exc)))
            continue
        account = ImportedAccount(
            file=file,
            line=number,
            protocol=protocol,
            host=host,
            port=port,
            username=fields[1],
            password=fields[2],
            deliver_to=fields[3],
            keep="keep" in flags,
            fetchall="fetchall" in flags,
            flush="flush" in flags,
            filters=_filters(flags),
        )
        if "ssl" in flags or security is Security.SSL:
            account.security = Security.SSL
        else:
            account.security = Security.STARTTLS
            account.note(
                number,
                STARTTLS_NOTE,
            )
        if account.keep and account.fetchall:
            account.note(
                number,
                KEEP_FETCHALL_NOTE,
            )
        result.accounts.append(account)
    return result
