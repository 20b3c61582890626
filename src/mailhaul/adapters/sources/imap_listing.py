"""Listing an IMAP folder: every message with FETCH lines, or cheaply with SEARCH.

A poll that already knows most UIDs lists them with two SEARCH responses (ALL, UNSEEN)
and fetches sizes and flags only for the UIDs it does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from mailhaul.adapters.sources.imap_commands import compress_uids
from mailhaul.adapters.sources.imap_conn import MAX_LISTING_LINE, ImapConnection
from mailhaul.adapters.sources.imap_parser import MAX_UID, Fetch, Response, Status, Untagged
from mailhaul.domain.errors import ProtocolViolation, TransientSourceError
from mailhaul.domain.messages import MessageRef

SEARCH_LISTING_MAX = 100_000
"""Above this many messages, list with FETCH lines (a SEARCH line would be too long)."""


class FolderLister:
    """Lists the selected folder of one IMAP connection."""

    def __init__(
        self,
        conn: ImapConnection,
        check: Callable[[Status, str], None],
        redact: Callable[[str], str],
    ) -> None:
        self._conn = conn
        self._check = check
        self._redact = redact

    def by_search(self, known: Collection[str]) -> list[MessageRef]:
        """List with two SEARCH lines; fetch details only for UIDs the caller does not know.

        Known UIDs come back with size 0: the caller has their details already. This makes
        the "nothing new" poll of a large folder two short responses instead of one line
        per message.
        """
        all_uids = self._search(b"UID SEARCH ALL")
        unseen = set(self._search(b"UID SEARCH UNSEEN"))
        unknown = [uid for uid in all_uids if str(uid) not in known]
        found = {ref.number: ref for ref in self.by_fetch(unknown)} if unknown else {}
        refs = []
        for uid in sorted(set(all_uids)):
            if uid in found:
                refs.append(found[uid])
            elif str(uid) in known:
                refs.append(MessageRef(str(uid), uid, 0, uid not in unseen))
        return refs

    def _search(self, command: bytes) -> list[int]:
        """The UIDs of a UID SEARCH."""
        results: list[int] = []

        def on_search(response: Response) -> None:
            if isinstance(response, Untagged) and response.name == "SEARCH":
                results.extend(v for v in response.values if isinstance(v, int))

        status = self._conn.command(command, on_search, line_limit=MAX_LISTING_LINE)
        if status.kind == "NO":
            raise TransientSourceError(
                f"server could not search the folder: {self._redact(status.text)}"
            )
        self._check(status, command.decode())
        if any(not 0 < uid <= MAX_UID for uid in results):
            raise ProtocolViolation("server sent an invalid UID in a SEARCH response")
        return results

    def by_fetch(self, uids: Sequence[int] = ()) -> list[MessageRef]:
        """UID, flags and size of every message (or of ``uids``), in UID order."""
        found: dict[int, MessageRef] = {}
        bound = [max(self._conn.exists or 0, 1000)]

        def on_fetch(response: Response) -> None:
            if not isinstance(response, Fetch):
                return
            uid, size = response.uid(), response.size()
            if uid is None:
                return  # an unsolicited flag update without UID
            if size is None:
                known = found.get(uid)
                if known is not None and response.flags() is not None:
                    found[uid] = MessageRef(known.uid, uid, known.size, response.seen())
                return
            found[uid] = MessageRef(str(uid), uid, size, response.seen())
            bound[0] = max(bound[0], self._conn.exists or 0)
            if len(found) > 2 * bound[0]:
                raise ProtocolViolation("server listed far more messages than the folder holds")

        for uid_set in compress_uids(uids) if uids else ["1:*"]:
            status = self._conn.command(
                b"UID FETCH %s (UID FLAGS RFC822.SIZE)" % uid_set.encode(),
                on_fetch,
                line_limit=MAX_LISTING_LINE,
            )
            if status.kind == "NO":
                raise TransientSourceError(
                    f"server could not list the folder: {self._redact(status.text)}"
                )
            self._check(status, "UID FETCH")
        return [found[uid] for uid in sorted(found)]
