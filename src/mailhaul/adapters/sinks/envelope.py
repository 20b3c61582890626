"""The envelope sender of a message, read from its header section.

SMTP's ``MAIL FROM`` (and an MDA's ``-f``) must come before the message data, but a sink
sees the headers only with the first writes. ``HeaderBuffer`` holds the first bytes of a
message until its header section is complete (``header_end``'s blank line, at most 64 KiB), then
``sender_from_header`` finds the sender: the ``Return-Path``, else the first ``From:``
address, else the null sender (``""``, sent as ``<>``). Anything that is not a plain
``local@domain`` (spaces, quotes, brackets, control or non-ASCII characters) gives the null
sender, so header text can never inject anything into a command.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

from mailhaul.domain.fingerprint import MAX_HEADER, header_end

_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])"
)


def is_plain_address(value: str) -> bool:
    """Whether ``value`` is a ``local@domain`` that is safe inside ``<…>`` and as an argument."""
    if value.startswith("-"):  # never mistaken for an option of an MDA
        return False
    return len(value) <= 320 and _ADDRESS.fullmatch(value) is not None


_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
MAX_LOCAL_PART = 64


def folder_address(address: str, delimiter: str, folder: str, utf8: bool) -> str | None:
    """``local+Folder@domain`` for LMTP's ``+detail`` delivery into a folder, written so that
    it is one address whatever the folder's name (it may come from the source server): a
    dot-atom where the name allows, else a quoted string (``"ann+My Folder"@example.org``).
    None where it cannot travel: a control character, a name outside ASCII to a server
    without SMTPUTF8 (Dovecot 2.3's LMTP has none), or a local part past 64 characters; the
    message then goes to the mailbox itself."""
    local, _, domain = address.rpartition("@")
    part = f"{local}{delimiter}{folder}"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in part) or len(part) > MAX_LOCAL_PART:
        return None
    if not part.isascii() and not utf8:
        return None
    as_ascii = "".join(ch if ch.isascii() else "a" for ch in part)  # RFC 6531: UTF-8 is atext
    if _DOT_ATOM.fullmatch(as_ascii):
        return f"{part}@{domain}"
    quoted = part.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"@{domain}'


def _fields(header: bytes) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) of each header field."""
    fields: list[tuple[str, str]] = []
    for raw in re.split(rb"\r?\n", header):
        line = raw.decode("utf-8", errors="replace")
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


def sender_from_header(header: bytes) -> str:
    """The envelope sender for a message with this header section ("" for ``<>``)."""
    fields = _fields(header)
    for name, value in fields:
        if name == "return-path":
            inner = value.strip()
            if inner.startswith("<") and ">" in inner:
                inner = inner[1 : inner.index(">")]
            inner = inner.strip()
            return inner if is_plain_address(inner) else ""
    for name, value in fields:
        if name == "from":
            for _display, address in getaddresses([value]):
                if is_plain_address(address):
                    return address
            return ""
    return ""


class HeaderBuffer:
    """Collects a message's first bytes until its header section is complete."""

    def __init__(self) -> None:
        self._data = bytearray()
        self.complete = False

    def add(self, chunk: bytes) -> None:
        """Add a chunk; ``complete`` once a blank line has arrived or 64 KiB are held."""
        start = max(0, len(self._data) - 3)  # a blank line may straddle the chunk end
        self._data += chunk
        if header_end(self._data, start) is not None or len(self._data) >= MAX_HEADER:
            self.complete = True

    def header(self) -> bytes:
        """The header section held (through the blank line; all of it if none came)."""
        end = header_end(self._data[:MAX_HEADER])
        return bytes(self._data[: end if end is not None else MAX_HEADER])

    def take(self) -> bytes:
        """Everything held (header and whatever followed in the same chunk); empties it."""
        data = bytes(self._data)
        self._data = bytearray()
        return data

    def sender(self) -> str:
        return sender_from_header(self.header())
