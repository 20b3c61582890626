"""IMAP NOTIFY (RFC 5465) for the push watcher: one connection hears of new mail in every
folder an account polls, instead of one IDLE connection per folder.

The connection keeps a folder open read-only (``EXAMINE``, its changes arrive as under IDLE)
and asks with ``NOTIFY SET (selected (MessageNew MessageExpunge)) (mailboxes "A" "B"
(MessageNew))``, or ``(personal (MessageNew))`` for every folder, to be told of new mail
elsewhere; the server then sends ``* STATUS "A" (MESSAGES n UIDNEXT m)`` for a folder that
received some. Nothing here does I/O: the command is built and the STATUS lines are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhaul.adapters.sources.imap.commands import can_quote, quote
from mailhaul.domain.imap_utf7 import encode_mailbox

_STATUS = re.compile(rb'^\* STATUS (?:"((?:[^"\\]|\\.)*)"|([^\s(){]+)|\{\d+\+?\})', re.I)


@dataclass(frozen=True)
class NotifyPlan:
    """What a NOTIFY connection hears of besides its open folder: ``mailboxes`` (names as
    the user writes them), or with ``every`` all the user's folders except ``ignored``
    (where polls move mail to: their news is none)."""

    mailboxes: tuple[str, ...] = ()
    every: bool = False
    ignored: tuple[str, ...] = ()

    def command(self) -> bytes:
        """The ``NOTIFY SET`` command (without its tag)."""
        selected = b"(selected (MessageNew MessageExpunge))"
        if self.every:
            return b"NOTIFY SET " + selected + b" (personal (MessageNew))"
        names = b" ".join(_wire_name(name) for name in self.mailboxes)
        return b"NOTIFY SET " + selected + b" (mailboxes " + names + b" (MessageNew))"

    def covers(self, wire_name: str | None) -> bool:
        """Whether a STATUS for the folder named ``wire_name`` (as sent, modified UTF-7;
        None: in a literal, unread) is news of a polled folder."""
        if wire_name is None:
            return True  # cannot tell: a poll too many is cheaper than a message missed
        if self.every:
            return wire_name not in {encode_mailbox(name) for name in self.ignored}
        return wire_name in {encode_mailbox(name) for name in self.mailboxes}


def _wire_name(name: str) -> bytes:
    encoded = encode_mailbox(name).encode("ascii")
    if not can_quote(encoded):
        raise ValueError(f"folder name {name!r} cannot be quoted")
    return quote(encoded)


def status_folder(line: bytes) -> tuple[bool, str | None]:
    """Whether ``line`` is an untagged STATUS, and the folder it names (None when the name
    came as a literal)."""
    found = _STATUS.match(line)
    if found is None:
        return False, None
    if found.group(1) is not None:
        raw = re.sub(rb"\\(.)", rb"\1", found.group(1))
        return True, raw.decode("latin-1")
    if found.group(2) is not None:
        return True, found.group(2).decode("latin-1")
    return True, None
