"""Message fingerprints: recognise a delivered message after its UID changed or was reused.

A fingerprint is a hash of the message's header section (through the first blank line,
as stored on the server) plus its size. Headers carry Message-ID, Date and the Received
chain, so two different messages practically never share one; a rebuilt IMAP folder
(new UIDVALIDITY) serves the same bytes, so the same message keeps its fingerprint.

Fields a server adds or rewrites for its own bookkeeping (mbox servers such as GNU
Mailutils serve ``X-IMAPbase``, ``X-UID``, ``Status`` … and change them between sessions)
are left out of the hash, and their bytes out of the size, so a rebuilt folder is still
recognised message by message. Fingerprints recorded before that rule (``legacy``) are
still recognised: for a message without such fields both forms are the same.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection

MAX_HEADER = 64 * 1024

BOOKKEEPING_FIELDS = frozenset(
    {
        b"x-imapbase",
        b"x-imap",
        b"x-uid",
        b"x-uidl",
        b"status",
        b"x-status",
        b"x-keywords",
        b"content-length",  # mbox writers (Dovecot's mbox, Solaris mail) add and rewrite it
    }
)
"""Header fields (lower-case names) that mbox-style servers add or change on their own."""
BOOKKEEPING_PREFIXES = (b"x-mozilla-status",)
"""Name prefixes of bookkeeping fields (``X-Mozilla-Status``, ``X-Mozilla-Status2``)."""


def header_end(data: bytes | bytearray, start: int = 0) -> int | None:
    """The offset just past the header section's blank line, or None if not found.

    The one rule of where a header section ends, for fingerprints and envelope senders
    alike: the first CRLF CRLF, or the first LF LF if it comes earlier (a message with bare
    LF line ends; ``\r\n\n`` counts, ``\n\r\n`` does not). A caller adding chunks passes
    ``start`` = where the data held before the last chunk ended, less 3: no earlier search
    found a blank line, so none ends before that.
    """
    crlf = data.find(b"\r\n\r\n", start)
    # a bare-LF blank line counts only before the first CRLF one (no scan past it)
    lf = data.find(b"\n\n", start, len(data) if crlf < 0 else crlf + 2)
    if lf >= 0:
        return lf + 2
    return crlf + 4 if crlf >= 0 else None


def header_section(data: bytes | bytearray) -> bytes:
    """The header section of a message prefix (at most 64 KiB; all of it if no blank line)."""
    end = header_end(data[:MAX_HEADER])
    return bytes(data[: end if end is not None else MAX_HEADER])


_BOOKKEEPING_NAME = rb"(?:%s|(?:%s)[!-9;-~]*)[ \t]*:" % (
    b"|".join(re.escape(name) for name in sorted(BOOKKEEPING_FIELDS)),
    b"|".join(re.escape(prefix) for prefix in BOOKKEEPING_PREFIXES),
)
_FIRST_FIELD = re.compile(_BOOKKEEPING_NAME, re.I)
_LATER_FIELD = re.compile(rb"\n" + _BOOKKEEPING_NAME, re.I)
"""Whether a header section holds a bookkeeping field at all: one C-level pass (a ``^`` with
``re.M`` would be five times slower)."""


def _is_bookkeeping(line: bytes) -> bool:
    name = line.split(b":", 1)[0].strip().lower()
    return name in BOOKKEEPING_FIELDS or name.startswith(BOOKKEEPING_PREFIXES)


def without_bookkeeping(section: bytes) -> bytes:
    """``section`` without the bookkeeping fields (each with its continuation lines)."""
    if _FIRST_FIELD.match(section) is None and _LATER_FIELD.search(section) is None:
        return section  # the common case: one pass of a compiled pattern
    lines = section.splitlines(keepends=True)
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = b":" in line and _is_bookkeeping(line)
        if not dropping:
            kept.append(line)
    return b"".join(kept) if len(kept) != len(lines) else section


def fingerprint(header: bytes, size: int) -> str:
    """The fingerprint of a message with this header section and server-side size."""
    section = header_section(header)
    kept = without_bookkeeping(section)
    digest = hashlib.sha256(kept).hexdigest()[:32]
    return f"{digest}:{size - (len(section) - len(kept))}"


def legacy_fingerprint(header: bytes, size: int) -> str:
    """The fingerprint as recorded before bookkeeping fields were left out."""
    digest = hashlib.sha256(header_section(header)).hexdigest()[:32]
    return f"{digest}:{size}"


def matches(header: bytes, size: int, recorded: Collection[str]) -> str | None:
    """The recorded fingerprint (current or legacy form) this message has, if any."""
    for print_ in (fingerprint(header, size), legacy_fingerprint(header, size)):
        if print_ in recorded:
            return print_
    return None
