"""Message fingerprints: recognise a delivered message after its UID changed.

A fingerprint is a hash of the message's header section (through the first blank line,
as stored on the server) plus its size. Headers carry Message-ID, Date and the Received
chain, so two different messages practically never share one; a rebuilt IMAP folder
(new UIDVALIDITY) serves the same bytes, so the same message keeps its fingerprint.
"""

from __future__ import annotations

import hashlib

MAX_HEADER = 64 * 1024


def header_end(data: bytes | bytearray) -> int | None:
    """The offset just past the header section's blank line, or None if not found."""
    crlf = data.find(b"\r\n\r\n")
    # a bare-LF blank line counts only before the first CRLF one (no scan past it)
    lf = data.find(b"\n\n", 0, len(data) if crlf < 0 else crlf + 2)
    if lf >= 0:
        return lf + 2
    return crlf + 4 if crlf >= 0 else None


def header_section(data: bytes | bytearray) -> bytes:
    """The header section of a message prefix (at most 64 KiB; all of it if no blank line)."""
    end = header_end(data[:MAX_HEADER])
    return bytes(data[: end if end is not None else MAX_HEADER])


def fingerprint(header: bytes, size: int) -> str:
    """The fingerprint of a message with this header section and server-side size."""
    digest = hashlib.sha256(header_section(header)).hexdigest()[:32]
    return f"{digest}:{size}"
