"""Is what the server sent the message it listed? Pure checks, applied before delivery.

A message is deleted (or flagged) on the source only after what was delivered is, by every
check the protocol allows, the listed message. Two checks live here:

- **Size.** The octets received must equal the size the server listed (POP3 ``LIST``,
  IMAP ``RFC822.SIZE``). Three honest deviations are allowed: a POP3 server that adds a
  final CRLF to a message lacking one (Cyrus; the CRLF is dropped before this check,
  see ``pop3.parsing.without_protocol_crlf``); a server that counts its stored bare LF
  line ends while it sends CRLF (the received size is then the listed size plus one octet
  per line); and a server that lists the size without the bookkeeping fields it adds
  while serving (GNU Mailutils pop3d adds ``X-UIDL`` in a mailbox's first session). A
  message cut short (an unstuffed ``.`` line, a truncated ``BODY[]``) or a different
  message sent in its place fails it.
- **Stand-ins.** Some servers answer with a generated message instead of the stored one:
  Courier POP3 wraps mail with 8-bit headers in a ``Cannot display Unicode content``
  notice for clients that did not say ``UTF8``, and Courier IMAP serves ``message
  unavailable`` for a message another session expunged. Their header shapes are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mailhaul.domain.fingerprint import header_section, without_bookkeeping


class StandIn(StrEnum):
    """A generated message a server serves instead of the stored one."""

    EXPUNGED = "the server's placeholder for a message expunged by another client"
    UNICODE_WRAPPER = (
        "the server's 'Cannot display Unicode content' wrapper (it serves mail with 8-bit "
        "headers only to clients that enable UTF-8)"
    )


_FIELD = re.compile(rb"^([A-Za-z-]+):[ \t]*(.*?)[ \t]*\r?$", re.M)
_STAND_INS: tuple[tuple[StandIn, dict[bytes, bytes]], ...] = (
    (
        StandIn.EXPUNGED,
        {b"from": b"System Administrator <root@localhost>", b"subject": b"message unavailable"},
    ),
    (
        StandIn.UNICODE_WRAPPER,
        {
            b"from": b"Mail Delivery Subsystem <postmaster>",
            b"subject": b"Cannot display Unicode content",
        },
    ),
)


_MARKS = tuple(shape[b"subject"] for _, shape in _STAND_INS)


def stand_in(head: bytes) -> StandIn | None:
    """Which known stand-in a message starting with ``head`` is, if any (every field of the
    stand-in's shape must be in the header section)."""
    if not any(mark in head for mark in _MARKS):
        return None  # the common case, in a microsecond: no stand-in's subject anywhere
    fields: dict[bytes, bytes] = {}
    for match in _FIELD.finditer(header_section(head)):
        fields.setdefault(match.group(1).lower(), match.group(2))
    for kind, shape in _STAND_INS:
        if all(fields.get(name) == value for name, value in shape.items()):
            return kind
    return None


@dataclass(frozen=True, slots=True)
class Received:
    """What arrived for one message: its octets, its line feeds, and its start (the header
    section, or at least the first bytes of the message)."""

    size: int
    line_feeds: int
    head: bytes = b""


def size_agrees(listed: int, received: Received) -> bool:
    """Whether ``received`` can be the message the server listed with ``listed`` octets."""
    size, feeds = received.size, received.line_feeds
    if listed in (size, size - feeds):
        return True
    section = header_section(received.head)
    kept = without_bookkeeping(section)
    extra, extra_feeds = len(section) - len(kept), section.count(b"\n") - kept.count(b"\n")
    return extra > 0 and listed in (size - extra, size - extra - (feeds - extra_feeds))


BOOKKEEPING_SLACK = 64 * 1024
"""Most bytes of bookkeeping fields a server may add to a message while serving it."""


def past_any_agreement(listed: int, received_so_far: int) -> bool:
    """Whether a message still arriving is already too long to agree with ``listed``: even
    a server counting bare LFs sends at most twice the bytes, plus its bookkeeping."""
    return received_so_far > 2 * listed + BOOKKEEPING_SLACK


def size_mismatch(listed: int, received: Received) -> str:
    """The run-log words for a size disagreement."""
    return f"the server listed {listed} bytes but sent {received.size}"
