"""Folder names in a fetchmailrc: fetchmail sends them as written, so a name that works with
fetchmail is in the server's modified UTF-7 form; mailhaul stores the Unicode name."""

from __future__ import annotations

import unicodedata

from mailhaul.domain.imap_utf7 import Utf7Error, decode_mailbox, encode_mailbox
from mailhaul.importers.common import ImportedAccount


def folder_name(account: ImportedAccount, written: str, line: int) -> str:
    """The Unicode name of a folder written as fetchmail sends it (modified UTF-7 or plain)."""
    unicode_name = modified_utf7_name(written)
    if unicode_name is None:
        return written
    account.note(line, f"folder {written!r} read as modified UTF-7: {unicode_name!r}")
    return unicode_name


def modified_utf7_name(written: str) -> str | None:
    """The decoded name if ``written`` is modified UTF-7 with a ``&`` in it, else None.

    fetchmail sends a folder name as written, so a name that works with fetchmail is in the
    server's modified UTF-7 form. Only a name that decodes and encodes back to exactly
    itself (RFC 3501's canonical form) and decodes to no control character counts; any
    other name (``R&D``, raw UTF-8) is taken as written.
    """
    if "&" not in written:
        return None
    try:
        decoded = decode_mailbox(written)
        canonical = encode_mailbox(decoded) == written
    except Utf7Error:
        return None
    if not canonical or any(unicodedata.category(char) == "Cc" for char in decoded):
        return None
    return decoded
