"""Pure POP3 wire helpers: streaming dot-unstuffing and reply parsing (RFC 1939, 2449, 5034).

Nothing here does I/O: the POP3 client feeds received bytes in and gets values (or a
``ProtocolViolation``) out, so each piece is tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailhaul.domain.errors import ConfigError, ProtocolViolation

CRLF = b"\r\n"
MAX_UID_LENGTH = 70
"""RFC 1939: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E."""
MAX_NUMBER_DIGITS = 12
"""Longer message numbers or sizes are nonsense (and would slow ``int()`` down)."""
MAX_AUTH_COMMAND = 255
"""RFC 5034: longer ``AUTH`` commands must send the initial response after a ``+`` prompt."""


class DotUnstuffer:
    """Decodes one dot-stuffed multi-line POP3 response body, fed in arbitrary pieces.

    ``feed(data)`` returns the decoded bytes and how many bytes of ``data`` it used.
    Bytes it did not use (at most four: a possibly split ``CRLF . CRLF``) must be fed
    again, followed by more, on the next call. Once the terminating ``.CRLF`` at a line
    start is used, ``done`` is True and nothing after it is ever consumed. The output is
    the bytes between the status line and the terminator, with the leading dot of each
    stuffed line removed; line boundaries are CRLF only (RFC 1939), and every other byte
    passes through untouched. A line start with a single dot followed by anything but a
    dot or CRLF (which a conforming server never sends) is kept as it is.
    """

    __slots__ = ("_at_line_start", "done")

    def __init__(self) -> None:
        self._at_line_start = True
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """Decode as much of ``data`` as is unambiguous; returns (output, bytes used)."""
        if self.done:
            return b"", 0
        size = len(data)
        parts: list[bytes] = []
        pos = 0
        if self._at_line_start:
            verdict = self._line_start(data, 0)
            if verdict is None:
                return b"", 0
            pos = verdict
            if self.done:
                return b"", pos
            self._at_line_start = False
        while True:
            idx = data.find(b"\r\n.", pos)
            if idx < 0:
                break
            parts.append(data[pos : idx + 2])
            verdict = self._line_start(data, idx + 2)
            if verdict is None:
                self._at_line_start = True
                return b"".join(parts), idx + 2
            if self.done:
                return b"".join(parts), verdict
            pos = verdict
        # No more dots at line starts: everything but a trailing CR is plain content.
        if data.endswith(CRLF):
            self._at_line_start = True
            end = size
        elif data.endswith(b"\r"):
            end = size - 1
        else:
            end = size
        parts.append(data[pos:end])
        return b"".join(parts), end

    def _line_start(self, data: bytes, at: int) -> int | None:
        """Judge the line starting at ``at``: where its content starts, or None for "need more".

        Sets ``done`` (and returns the index after the terminator) on ``.CRLF``.
        """
        size = len(data)
        if at >= size:
            return None
        if data[at] != 0x2E:  # "."
            return at
        if at + 1 >= size:
            return None
        follower = data[at + 1]
        if follower == 0x2E:
            return at + 1  # a stuffed dot: drop it, the second dot is content
        if follower == 0x0D:
            if at + 2 >= size:
                return None
            if data[at + 2] == 0x0A:
                self.done = True
                return at + 3
        return at


@dataclass(frozen=True, slots=True)
class Reply:
    """One POP3 status line: ``ok`` for +OK, its text, and its RFC 2449 response code."""

    ok: bool
    text: str
    code: str | None = None


def safe_text(raw: bytes, limit: int = 200) -> str:
    """Server text made safe to log: decoded leniently, control characters replaced, cut."""
    text = raw.decode("utf-8", "replace")
    cleaned = "".join("?" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in text[:limit])
    return cleaned + ("…" if len(text) > limit else "")


def parse_reply(line: bytes) -> Reply:
    """Parse a status line (``+OK …`` or ``-ERR …``); anything else is a violation."""
    body = line.rstrip(b"\r\n")
    if body[:3] == b"+OK" and (len(body) == 3 or body[3:4] in (b" ", b"\t")):
        return Reply(ok=True, text=safe_text(body[4:]))
    if body[:4] == b"-ERR" and (len(body) == 4 or body[4:5] in (b" ", b"\t")):
        text = safe_text(body[5:])
        return Reply(ok=False, text=text, code=response_code(text))
    raise ProtocolViolation(f"server sent {safe_text(body, 80)!r} where +OK or -ERR was due")


def response_code(text: str) -> str | None:
    """The RFC 2449 response code of a reply text (``[IN-USE] …`` → ``IN-USE``), upper-case."""
    if not text.startswith("["):
        return None
    end = text.find("]")
    if end <= 1:
        return None
    return text[1:end].upper()


def is_terminator(line: bytes) -> bool:
    """Whether a line of a multi-line response is its final ``.``."""
    return line in (b".\r\n", b".\n")


def unstuff_line(line: bytes) -> bytes:
    """One line of a multi-line response with its line ending and stuffed dot removed."""
    body = line.rstrip(b"\r\n")
    return body[1:] if body.startswith(b"..") else body


def unstuff_block(block: bytes) -> list[bytes]:
    """The lines of a multi-line reply's block (terminator removed), unstuffed."""
    if not block:
        return []
    lines = [line.rstrip(b"\r") for line in block.split(b"\n")[:-1]]
    if block.startswith(b"..") or b"\n.." in block:
        lines = [line[1:] if line.startswith(b"..") else line for line in lines]
    return lines


def parse_capabilities(lines: list[bytes]) -> frozenset[str]:
    """CAPA lines as upper-case names; each SASL mechanism also as ``AUTH=<MECH>``."""
    names: set[str] = set()
    for line in lines:
        words = safe_text(line, 1000).upper().split()
        if not words:
            continue
        names.add(words[0])
        if words[0] == "SASL":
            names.update(f"AUTH={mech}" for mech in words[1:])
    return frozenset(names)


def _number(raw: bytes, what: str, line: bytes, minimum: int) -> int:
    if not raw.isdigit() or len(raw) > MAX_NUMBER_DIGITS:
        raise ProtocolViolation(f"bad {what} in {safe_text(line, 80)!r}")
    value = int(raw)
    if value < minimum:
        raise ProtocolViolation(f"bad {what} in {safe_text(line, 80)!r}")
    return value


def parse_scan_line(line: bytes) -> tuple[int, int]:
    """A LIST line ``<number> <octets> [anything]`` as (number, size)."""
    words = line.split()
    if len(words) < 2:
        raise ProtocolViolation(f"bad LIST line {safe_text(line, 80)!r}")
    number = _number(words[0], "message number", line, 1)
    return number, _number(words[1], "message size", line, 0)


def parse_uidl_line(line: bytes) -> tuple[int, str]:
    """A UIDL line ``<number> <unique-id>`` as (number, uid); the uid is fully checked."""
    words = line.rstrip(b" \t").split(b" ")
    if len(words) != 2:
        raise ProtocolViolation(f"bad UIDL line {safe_text(line, 80)!r}")
    number = _number(words[0], "message number", line, 1)
    uid = words[1]
    if not uid or len(uid) > MAX_UID_LENGTH:
        raise ProtocolViolation(f"UIDL of message {number} is empty or over 70 characters")
    if any(byte < 0x21 or byte > 0x7E for byte in uid):
        raise ProtocolViolation(f"UIDL of message {number} has characters outside 0x21-0x7E")
    return number, uid.decode("ascii")


_NUMBER_RE = rb"([1-9][0-9]{0,%d})" % (MAX_NUMBER_DIGITS - 1)
_SCAN_LINES = re.compile(
    rb"^%s ([0-9]{1,%d})(?:[ \t][^\n]*)?$" % (_NUMBER_RE, MAX_NUMBER_DIGITS), re.M
)
_UIDL_LINES = re.compile(rb"^%s ([\x21-\x7e]{1,%d})[ \t]*$" % (_NUMBER_RE, MAX_UID_LENGTH), re.M)


def parse_scan_listing(lines: list[bytes]) -> dict[int, int]:
    """All LIST lines as {number: size}; duplicate numbers are a violation.

    Well-formed listings are parsed by one regular expression over all lines; anything
    else takes the line-by-line path, which names what is wrong.
    """
    found = _findall_lines(_SCAN_LINES, lines)
    if found is not None:
        fast = {int(number): int(size) for number, size in found}
        if len(fast) == len(found):
            return fast
    return scan_listing_by_line(lines)


def scan_listing_by_line(lines: list[bytes]) -> dict[int, int]:
    """``parse_scan_listing`` one line at a time (the path that explains violations)."""
    sizes: dict[int, int] = {}
    for line in lines:
        number, size = parse_scan_line(line)
        if number in sizes:
            raise ProtocolViolation(f"LIST names message {number} twice")
        sizes[number] = size
    return sizes


def parse_uid_listing(lines: list[bytes], sizes: dict[int, int]) -> dict[int, str]:
    """All UIDL lines as {number: uid}, checked against the LIST numbers in ``sizes``.

    One regular expression for a well-formed listing, line by line otherwise (as above).
    """
    found = _findall_lines(_UIDL_LINES, lines)
    if found is not None:
        fast = {int(number): uid.decode("ascii") for number, uid in found}
        if len(fast) == len(found) and fast.keys() == sizes.keys():
            return fast
    return uid_listing_by_line(lines, sizes)


def uid_listing_by_line(lines: list[bytes], sizes: dict[int, int]) -> dict[int, str]:
    """``parse_uid_listing`` one line at a time (the path that explains violations)."""
    uids: dict[int, str] = {}
    for line in lines:
        number, uid = parse_uidl_line(line)
        if number in uids:
            raise ProtocolViolation(f"UIDL names message {number} twice")
        if number not in sizes:
            raise ProtocolViolation(f"UIDL names message {number}, which LIST does not")
        uids[number] = uid
    missing = sorted(set(sizes) - set(uids))
    if missing:
        raise ProtocolViolation(f"UIDL has no unique-id for message {missing[0]}")
    return uids


def _findall_lines(pattern: re.Pattern[bytes], lines: list[bytes]) -> list[Any] | None:
    """The groups of ``pattern`` (anchored per line) for every line, or None unless every
    line matched. Lines never hold a line feed when they come from the wire; if one does,
    the per-line path decides."""
    block = b"\n".join(lines)
    if block.count(b"\n") != max(len(lines) - 1, 0):
        return None
    found = pattern.findall(block)
    return found if len(found) == len(lines) else None


def check_argument(value: str, what: str) -> None:
    """Refuse a command argument that could break the command line (CR, LF, NUL, bad text)."""
    if any(ch in value for ch in "\r\n\0"):
        raise ConfigError(f"the {what} contains a line break or NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"the {what} is not valid Unicode text") from None


def without_protocol_crlf(chunks: Iterator[bytes], listed_size: int) -> Iterator[bytes]:
    """Pass ``chunks`` through, dropping the CRLF POP3 adds to a message lacking one.

    RETR always ends the data with CRLF before the terminating ".", so a stored message
    without a final line break arrives two bytes longer than it is. When the server's
    LIST size is exact (Dovecot's is) and the data is exactly that size plus a final CRLF,
    the CRLF is the protocol's, not the message's, and is dropped.
    """
    held = b""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        data = held + chunk if held else chunk
        if len(data) <= 2:
            held = data
            continue
        held = data[-2:]
        yield data[:-2]
    if not (total == listed_size + 2 and held == b"\r\n") and held:
        yield held
