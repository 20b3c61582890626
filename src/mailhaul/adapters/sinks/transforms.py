"""Streaming transforms of message bytes, chunk by chunk, carrying state across chunk ends.

- ``DataEncoder``: the SMTP/LMTP ``DATA`` encoding (RFC 5321 4.1.1.4 and 4.5.2): every line
  end becomes CRLF (a bare LF or a bare CR too, as the stdlib's ``smtplib`` does, so no
  receiver can be tricked into seeing an early end of data), a line starting with ``.`` gets
  one more, and ``finish()`` ends the last line and adds the ``.`` terminator.
- ``CrlfToLf``: CRLF → LF (what a Maildir file and an MDA reading a local file expect); bare
  CRs stay.
"""

from __future__ import annotations

TERMINATOR = b".\r\n"


class DataEncoder:
    """Dot-stuffing and line-end normalisation of a message for SMTP ``DATA``."""

    def __init__(self) -> None:
        self._pending_cr = False  # the last chunk ended in CR: its LF may come next
        self._line_start = True  # the last byte emitted ended a line (or nothing yet)
        self.size = 0  # bytes emitted so far

    def feed(self, chunk: bytes) -> bytes:
        """The encoded form of the next chunk (maybe shorter: a trailing CR is held back)."""
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
        if not chunk:
            return b""
        data = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        data = data.replace(b"\n.", b"\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\n")
        self.size += len(data)
        return data

    def finish(self) -> bytes:
        """The rest: a held-back CR as a line end, a final CRLF if needed, and ``.CRLF``."""
        tail = b""
        if self._pending_cr:
            self._pending_cr = False
            tail = b"\r\n"
            self._line_start = True
        if not self._line_start:
            tail += b"\r\n"
            self._line_start = True
        self.size += len(tail)
        return tail + TERMINATOR


class CrlfToLf:
    """CRLF → LF across chunk boundaries (a CR split from its LF is carried over)."""

    def __init__(self) -> None:
        self._pending_cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
        return chunk.replace(b"\r\n", b"\n")

    def finish(self) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            return b"\r"
        return b""


def encode_data(message: bytes) -> bytes:
    """The whole ``DATA`` encoding of ``message`` in one go (reference for the tests)."""
    encoder = DataEncoder()
    return encoder.feed(message) + encoder.finish()


def decode_data(data: bytes) -> bytes:
    """What a receiver makes of ``data`` (through the terminator): dot-unstuffed lines."""
    if not data.endswith(b"\r\n" + TERMINATOR) and data != TERMINATOR:
        raise ValueError("no terminator at the end")
    body = data[: -len(TERMINATOR)]
    lines = body.split(b"\r\n")
    if lines[-1] != b"":
        raise ValueError("the data does not end with CRLF before the terminator")
    out = [line[1:] if line.startswith(b".") else line for line in lines[:-1]]
    return b"".join(line + b"\r\n" for line in out)
