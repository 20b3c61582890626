"""Spam and virus checks before delivery, as plain values: what an account asks for, what a
scanner answered, and the headers and route that follow from it (no sockets here).

The filter stage judges the message as the source server received it: the scanners get the
fetched bytes (without the ``Received:`` line mailhaul adds) and, for rspamd, the sending
host taken from the source's own ``Received:`` line (``sender_context``), so that SPF, HELO
and forged-recipient rules judge the original sender rather than mailhaul's connection.
"""

from __future__ import annotations

import email.errors
import email.header
import ipaddress
import re
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from enum import StrEnum
from typing import TypeVar

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.fingerprint import header_end


class SpamAction(StrEnum):
    """What the spam check does with a message: nothing, headers, or headers + Junk."""

    OFF = "off"
    TAG = "tag"
    JUNK = "junk"


class VirusAction(StrEnum):
    """What the virus check does with an infected message."""

    OFF = "off"
    QUARANTINE = "quarantine"


class ScannerFailure(StrEnum):
    """What happens when a scanner is down, times out or answers garbage."""

    DEFER = "defer"  # the run stops as a temporary error; the message stays on the server
    DELIVER = "deliver"  # delivered with headers saying it was not checked


_E = TypeVar("_E", bound=StrEnum)


class Route(StrEnum):
    """Where a judged message goes."""

    MAILBOX = "mailbox"
    JUNK = "junk"
    QUARANTINE = "quarantine"


def _choice(kind: type[_E], value: str | _E, what: str) -> _E:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        allowed = " | ".join(item.value for item in kind)
        raise ConfigError(f"{what} must be one of {allowed}, not {value!r}") from None


def spam_action(value: str | SpamAction) -> SpamAction:
    """``value`` as a SpamAction; ConfigError naming the choices otherwise."""
    return _choice(SpamAction, value, "antispam")


def virus_action(value: str | VirusAction) -> VirusAction:
    """``value`` as a VirusAction; ConfigError naming the choices otherwise."""
    return _choice(VirusAction, value, "antivirus")


def scanner_failure(value: str | ScannerFailure) -> ScannerFailure:
    """``value`` as a ScannerFailure; ConfigError naming the choices otherwise."""
    return _choice(ScannerFailure, value, "filter.on_scanner_failure")


@dataclass(frozen=True)
class FilterOptions:
    """The checks one account asks for."""

    antispam: SpamAction = SpamAction.OFF
    antivirus: VirusAction = VirusAction.OFF

    @property
    def active(self) -> bool:
        """Whether any check runs (otherwise messages stream straight into the sink)."""
        return self.antispam is not SpamAction.OFF or self.antivirus is not VirusAction.OFF


@dataclass(frozen=True)
class SpamVerdict:
    """A spam scanner's answer."""

    scanner: str
    score: float
    threshold: float
    is_spam: bool
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class VirusVerdict:
    """A virus scanner's answer: the signature found, or None for a clean message."""

    scanner: str
    signature: str | None = None

    @property
    def infected(self) -> bool:
        """Whether the scanner found something."""
        return self.signature is not None


@dataclass(frozen=True)
class Judgement:
    """What the filter stage decided for one message."""

    route: Route = Route.MAILBOX
    headers: bytes = b""
    spam: SpamVerdict | None = None
    virus: VirusVerdict | None = None
    unchecked: tuple[str, ...] = ()  # why a check was skipped (too large, scanner down)


MAX_RULES_SHOWN = 40


def _header_value(text: str) -> str:
    """Text safe inside one header line (no CR, LF or other control characters)."""
    return "".join(c if c >= " " and c != "\x7f" else " " for c in text)[:900]


def spam_headers(verdict: SpamVerdict) -> bytes:
    """``X-Spam-Flag``, ``X-Spam-Score`` and ``X-Spam-Status`` for a verdict (CRLF lines)."""
    rules = ",".join(_header_value(rule) for rule in verdict.rules[:MAX_RULES_SHOWN])
    if len(verdict.rules) > MAX_RULES_SHOWN:
        rules += ",..."
    status = (
        f"{'Yes' if verdict.is_spam else 'No'}, score={verdict.score:.1f} "
        f"required={verdict.threshold:.1f} scanner={_header_value(verdict.scanner)}"
    )
    lines = [
        f"X-Spam-Flag: {'YES' if verdict.is_spam else 'NO'}",
        f"X-Spam-Score: {verdict.score:.1f}",
        f"X-Spam-Status: {status}" + (f"\r\n\ttests={rules}" if rules else ""),
    ]
    return "".join(line + "\r\n" for line in lines).encode()


def unchecked_spam_header(reason: str) -> bytes:
    """The header of a message delivered without a spam check."""
    return f"X-Spam-Status: unchecked ({_header_value(reason)})\r\n".encode()


def virus_header(verdict: VirusVerdict | None, reason: str = "") -> bytes:
    """``X-Virus-Scanned`` for a clean message, or ``no`` with why it was not scanned."""
    if verdict is None:
        return f"X-Virus-Scanned: no ({_header_value(reason)})\r\n".encode()
    return f"X-Virus-Scanned: clean by {_header_value(verdict.scanner)}\r\n".encode()


@dataclass(frozen=True)
class SenderContext:
    """What an SMTP server knew when the source received the message; each part optional."""

    ip: str | None = None
    helo: str | None = None
    hostname: str | None = None
    mail_from: str | None = None  # the envelope sender (the message's Return-Path)
    rcpt: str | None = None  # the envelope recipient (the Received line's "for <…>")

    @property
    def known(self) -> bool:
        """Whether the sending host was found."""
        return self.ip is not None


LOOPBACK = SenderContext(ip="127.0.0.1")
"""What rspamd is told when the sending host cannot be found: a local address, on which its
SPF, HELO and reverse-DNS rules do not judge mailhaul's own connection."""

_FROM = re.compile(r"^\s*from\s+(\S+)", re.IGNORECASE)
_BRACKETED = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_PARENS = re.compile(r"\(([^()]*)\)")
_FOR = re.compile(r"\sfor\s+<([^<>@\s]+@[^<>@\s]+)>", re.IGNORECASE)
_RETURN_PATH = re.compile(rb"^Return-Path:[ \t]*<([^<>@\s]+@[^<>@\s]+)>", re.I | re.M)
_INTERNAL_HOP = re.compile(r"\swith\s+(?:HTTPS?|MAPI|LMTPS?A?)\b", re.IGNORECASE)


def _public_ip(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return str(address) if address.is_global else None


def _from_clause(value: str) -> SenderContext | None:
    """The sending host of one ``Received:`` value, when it names a public address and the
    hop was mail transfer (not a provider's internal HTTP, MAPI or LMTP hop)."""
    match = _FROM.match(value)
    if match is None or _INTERNAL_HOP.search(value):
        return None
    helo = match.group(1).strip("[]")
    rest = value[match.end() :]
    by_at = re.search(r"\sby\s", rest, re.IGNORECASE)
    clause = rest[: by_at.start()] if by_at else rest
    for group in _PARENS.findall(clause):
        bracketed = _BRACKETED.search(group)
        words = group.replace("[", " [").split()
        ip = _public_ip(bracketed.group(1)) if bracketed else None
        if ip is None:  # Microsoft: "(2a01:111:f400::200)", bare in the parentheses
            ip = next(
                (found for w in words if (found := _public_ip(w.strip(";,"))) is not None), None
            )
        if ip is not None:
            name = words[0].rstrip(".") if words and not words[0].startswith("[") else None
            hostname = name if name and _public_ip(name) is None and "." in name else None
            return SenderContext(ip=ip, helo=helo or None, hostname=hostname, rcpt=_for(rest))
    ip = _public_ip(helo)
    return SenderContext(ip=ip, helo=helo, rcpt=_for(rest)) if ip else None


def _for(clause: str) -> str | None:
    """The recipient a ``Received:`` line names (``for <bob@example.net>``), if one."""
    found = _FOR.search(clause)
    return found.group(1) if found else None


def sender_context(head: bytes) -> SenderContext:
    """The sending host from the source's own ``Received:`` lines: the first, from the top,
    that names a public address (lines between the provider's own hosts name private ones or
    none); ``LOOPBACK`` when there is none."""
    for value in _unfolded_received(head):
        found = _from_clause(value)
        if found is not None:
            end = header_end(head)
            sender = _RETURN_PATH.search(head if end is None else head[:end])
            mail_from = sender.group(1).decode("latin-1") if sender else None
            return replace(found, mail_from=mail_from)
    return LOOPBACK


def _unfolded_received(head: bytes) -> list[str]:
    text = head.decode("latin-1").replace("\r\n", "\n")
    fields: list[list[str]] = []
    for line in text.split("\n"):
        if not line:
            break
        if line[0] in " \t":
            if fields:
                fields[-1].append(line.strip())
            continue
        fields.append([line])
    found = []
    for parts in fields:
        name, _, value = parts[0].partition(":")
        if name.strip().lower() == "received":
            found.append(" ".join([value.strip(), *parts[1:]]))
    return found


def summary_fields(head: bytes) -> tuple[str, str]:
    """The ``From`` and ``Subject`` of a header section, decoded, for a list of messages."""
    parsed = BytesHeaderParser().parsebytes(head)
    found = []
    for name in ("From", "Subject"):
        raw = parsed.get(name, "")
        try:
            text = str(email.header.make_header(email.header.decode_header(str(raw))))
        except (ValueError, LookupError, email.errors.HeaderParseError):
            text = str(raw)
        found.append(_header_value(text)[:300].strip())
    return found[0], found[1]
