"""Pure helpers that build IMAP command arguments: quoted strings and UID sets."""

from __future__ import annotations

from collections.abc import Iterable

MAX_SET_LENGTH = 7900
"""Longest UID set put in one command, so that no command line exceeds about 8 KB."""


def can_quote(value: bytes, utf8: bool = False) -> bool:
    """Whether ``value`` fits in a quoted string (7-bit, or UTF-8 once the server accepts
    it (RFC 6855); no NUL, CR or LF)."""
    top = 0x100 if utf8 else 0x80
    return all(0 < byte < top and byte not in (0x0A, 0x0D) for byte in value)


def quote(value: bytes, utf8: bool = False) -> bytes:
    """``value`` as an IMAP quoted string, escaping ``"`` and ``\\``."""
    if not can_quote(value, utf8):
        raise ValueError("value cannot be carried by a quoted string")
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """The distinct ``uids`` as sorted, non-adjacent inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return ranges


def compress_uids(uids: Iterable[int], max_length: int = MAX_SET_LENGTH) -> list[str]:
    """UID sets like ``1:5,7,9:12`` covering ``uids``, each at most ``max_length`` chars.

    Returns an empty list for no UIDs; every UID must be a positive integer.
    """
    sets: list[str] = []
    current: list[str] = []
    current_length = -1  # no comma before the first element
    for low, high in uid_ranges(uids):
        if low < 1:
            raise ValueError(f"UID {low} is not a positive number")
        part = str(low) if low == high else f"{low}:{high}"
        if current and current_length + 1 + len(part) > max_length:
            sets.append(",".join(current))
            current, current_length = [], -1
        current.append(part)
        current_length += 1 + len(part)
    if current:
        sets.append(",".join(current))
    return sets


def expand_uid_set(uid_set: str) -> set[int]:
    """The UIDs named by a set without ``*`` (the inverse of ``compress_uids``)."""
    uids: set[int] = set()
    for part in uid_set.split(","):
        low, _, high = part.partition(":")
        first, last = int(low), int(high or low)
        uids.update(range(min(first, last), max(first, last) + 1))
    return uids
