"""What an IMAP session knows of the selected folder's message numbers.

``EXISTS`` says how many messages there are, ``EXPUNGE`` shifts the numbers after the one
removed, and every ``FETCH`` that carries a UID ties a number to it. This is what lets a
body fetch without a UID item be matched to the message asked for (a guess the UID item
must confirm). A server inflating ``EXISTS`` or naming numbers out of range stops the
bookkeeping instead of growing memory: the numbers are then unknown.
"""

from __future__ import annotations

MAX_SEQ_GROWTH = 1_000_000
"""Largest jump of EXISTS we track sequence numbers for (more stops that bookkeeping)."""
MAX_TRACKED = 2_000_000
"""Most sequence numbers tracked at all (a server inflating EXISTS stops the bookkeeping)."""


class MessageNumbers:
    """The message count and the UID at each message number, as far as they are known."""

    def __init__(self) -> None:
        self.exists: int | None = None
        """The last ``EXISTS`` count (less the expunges since), None before any."""
        self._uids: list[int | None] | None = None

    def reset(self) -> None:
        """A folder was just selected: nothing is known yet, tracking starts afresh."""
        self.exists, self._uids = None, []

    def note_exists(self, count: int) -> None:
        self.exists = count
        seqs = self._uids
        if seqs is not None and count > len(seqs):
            if count - len(seqs) > MAX_SEQ_GROWTH or count > MAX_TRACKED:
                self._uids = None
            else:
                seqs.extend([None] * (count - len(seqs)))

    def note_expunge(self, seq: int) -> None:
        if self.exists:
            self.exists -= 1
        seqs = self._uids
        if seqs is not None:
            if 0 < seq <= len(seqs):
                del seqs[seq - 1]
            else:
                self._uids = None  # we lost track: stop guessing by number

    def note_uid(self, seq: int, uid: int | None) -> None:
        seqs = self._uids
        if seqs is not None and uid is not None and 0 < seq <= len(seqs):
            seqs[seq - 1] = uid

    def uid_at(self, seq: int) -> int | None:
        """The UID the session believes message number ``seq`` has, if known."""
        seqs = self._uids
        if seqs is not None and 0 < seq <= len(seqs):
            return seqs[seq - 1]
        return None
