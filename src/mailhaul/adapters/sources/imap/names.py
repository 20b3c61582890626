"""Folder names between the IMAP wire and mailhaul: modified UTF-7 (or UTF-8 once
``UTF8=ACCEPT`` is enabled), and what a ``LIST`` response says of a folder."""

from __future__ import annotations

from collections.abc import Sequence

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.folders import RemoteFolder
from mailhaul.domain.imap_utf7 import Utf7Error, decode_mailbox, encode_mailbox


def remote_folder(values: Sequence[object], utf8: bool) -> RemoteFolder:
    """One ``* LIST (attributes) separator name`` response."""
    attributes = values[0] if isinstance(values[0], list) else []
    names = (a.decode("ascii", "replace") if isinstance(a, bytes) else str(a) for a in attributes)
    separator = values[1]
    sep = separator.decode("utf-8", "replace") if isinstance(separator, bytes) else separator
    return RemoteFolder(
        folder_name(values[2], utf8),
        sep if isinstance(sep, str) and len(sep) == 1 else None,
        frozenset(name.lower() for name in names),
    )


def folder_name(value: object, utf8: bool = False) -> str:
    raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if utf8:
        return raw  # RFC 6855: names are UTF-8 once UTF8=ACCEPT is enabled
    try:
        return decode_mailbox(raw)
    except Utf7Error:
        return raw


def encoded_folder(folder: str, utf8: bool = False) -> bytes:
    """A folder name as sent on the wire (modified UTF-7, or UTF-8 after
    ``ENABLE UTF8=ACCEPT``), or ConfigError."""
    if utf8:
        return folder.encode("utf-8")
    try:
        return encode_mailbox(folder).encode("ascii")
    except Utf7Error as exc:
        raise ConfigError(f"invalid folder name {folder!r}: {exc}") from exc
