"""Modified UTF-7, the IMAP encoding of mailbox names (RFC 3501 §5.1.3): pure functions.

Printable US-ASCII (0x20-0x7E) stands for itself, except ``&``, written ``&-``; every
other run of characters becomes ``&`` + base64 (with ``,`` for ``/``, no padding) of its
UTF-16BE form + ``-``.
"""

from __future__ import annotations

import binascii

_SHIFT = "&"


class Utf7Error(ValueError):
    """Raised when a mailbox name is not valid modified UTF-7 (or cannot be encoded)."""


def _is_direct(char: str) -> bool:
    return " " <= char <= "~"


def _encode_run(run: str) -> str:
    try:
        raw = run.encode("utf-16-be")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise Utf7Error(f"cannot encode {run!r} as UTF-16") from exc
    b64 = binascii.b2a_base64(raw, newline=False).decode("ascii")
    return _SHIFT + b64.rstrip("=").replace("/", ",") + "-"


def encode_mailbox(name: str) -> str:
    """``name`` in modified UTF-7 (all printable ASCII, safe inside a quoted string)."""
    out: list[str] = []
    run: list[str] = []
    for char in name:
        if _is_direct(char):
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append("&-" if char == _SHIFT else char)
        else:
            run.append(char)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def _decode_run(b64: str, name: str) -> str:
    if not b64:
        raise Utf7Error(f"empty shifted sequence in mailbox name {name!r}")
    padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
    try:
        raw = binascii.a2b_base64(padded.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise Utf7Error(f"bad base64 in mailbox name {name!r}") from exc
    if len(raw) % 2:
        raise Utf7Error(f"odd UTF-16 length in mailbox name {name!r}")
    try:
        return raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise Utf7Error(f"bad UTF-16 in mailbox name {name!r}") from exc


def decode_mailbox(name: str) -> str:
    """Decode a modified UTF-7 mailbox name; raises ``Utf7Error`` if it is malformed."""
    out: list[str] = []
    pos = 0
    length = len(name)
    while pos < length:
        char = name[pos]
        if char != _SHIFT:
            if not _is_direct(char):
                raise Utf7Error(f"character {char!r} not allowed in mailbox name {name!r}")
            out.append(char)
            pos += 1
            continue
        end = name.find("-", pos + 1)
        if end < 0:
            raise Utf7Error(f"unterminated shifted sequence in mailbox name {name!r}")
        if end == pos + 1:
            out.append(_SHIFT)
        else:
            out.append(_decode_run(name[pos + 1 : end], name))
        pos = end + 1
    return "".join(out)
