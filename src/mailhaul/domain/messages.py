"""What a source lists about its messages, and what mailhaul remembers about them."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

POP3_FOLDER = "INBOX"


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message as listed by the source.

    ``uid`` is the POP3 UIDL string or the IMAP UID (as text); ``number`` is how the
    protocol addresses the message in this session (POP3 message number, IMAP UID).
    ``seen`` is the IMAP \\Seen flag at listing time (always False on POP3).
    """

    uid: str
    number: int
    size: int
    seen: bool = False


@dataclass(frozen=True)
class FolderState:
    """An IMAP folder's STATUS: UIDVALIDITY, UIDNEXT, MESSAGES and UNSEEN.

    Two equal states mean the same set of messages (RFC 9051 §2.3.1.1: UIDNEXT changes
    whenever a message is added, so an equal UIDNEXT and count rule out additions and
    removals) with as many unread; only which ones are unread may differ.
    """

    uidvalidity: int
    uidnext: int
    messages: int
    unseen: int


@dataclass(frozen=True)
class FolderListing:
    """The messages of one folder; ``uidvalidity`` is None on POP3.

    ``stable_uids`` is False when the server cannot name messages across sessions (a
    POP3 server without UIDL): then each ``uid`` is unique only within this session.
    """

    folder: str
    uidvalidity: int | None
    messages: tuple[MessageRef, ...]
    stable_uids: bool = True
    state: FolderState | None = None  # IMAP, when the server named its UIDNEXT

    @property
    def uids(self) -> frozenset[str]:
        """The UIDs (UIDLs) listed."""
        return frozenset(ref.uid for ref in self.messages)


class RecordState(StrEnum):
    """What mailhaul knows about one source message."""

    PENDING = "pending"  # about to be delivered; reconciled on the next run
    DELIVERED = "delivered"
    REFUSED = "refused"  # the backend refused it for good; skipped until retried
    BASELINE = "baseline"  # there before the first sync (new only, since): never fetched


@dataclass(frozen=True)
class KnownMessages:
    """The per-folder memory the plan needs: which UIDs were delivered or refused.

    ``sizes``: the size each delivered UID was listed with when it was delivered (0 when
    not known, e.g. imported state), to notice a unique-id the server gave to other mail.
    """

    delivered: frozenset[str] = frozenset()
    refused: frozenset[str] = frozenset()
    sizes: Mapping[str, int] = field(default_factory=dict)
    delivered_at: Mapping[str, float] = field(default_factory=dict)
    """When each delivered UID was delivered (recorded), for ``delete_after_days``."""
    baseline: frozenset[str] = frozenset()
    """UIDs on the server before the first sync wanted them (``new_only``, ``since``):
    left alone, never fetched or deleted."""

    @property
    def handled(self) -> frozenset[str]:
        """Every UID something is known of: delivered, refused or from before the sync."""
        return self.delivered | self.refused | self.baseline


def header_date(head: bytes) -> datetime.date | None:
    """The day of a header section's ``Date:`` (in its own time zone), or None when it has
    none that can be read."""
    from email.utils import parsedate_to_datetime

    for line in head.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].split(b"\n"):
        if line[:5].lower() == b"date:":
            try:
                return parsedate_to_datetime(line[5:].decode("ascii", "replace").strip()).date()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None  # a date no calendar holds is no date: the message is fetched
    return None
