"""Listing an IMAP folder: every message with FETCH lines, or cheaply with SEARCH.

A poll that already knows most UIDs lists them with two SEARCH responses (ALL, UNSEEN; as
ESEARCH ranges where the server has them) and fetches sizes and flags only for the UIDs it
does not know.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from mailhaul.adapters.sources.imap.commands import compress_uids
from mailhaul.adapters.sources.imap.parser import MAX_UID, Fetch, Response, Status, Untagged
from mailhaul.adapters.sources.imap.session import MAX_LISTING_LINE, ImapConnection
from mailhaul.domain.errors import ProtocolViolation, ServerStalled, TransientSourceError
from mailhaul.domain.messages import MessageRef

_NUMBER = re.compile(r"[0-9]{1,10}")

SEARCH_LISTING_MAX = 100_000
"""Above this many messages, list with FETCH lines (a SEARCH line would be too long)."""
MAX_LISTED = 1_000_000
LISTED_PER_PROGRESS = 1000
"""Every this many newly listed messages count as progress (``Wire``'s command time
starts again): the listing is bounded by the folder's size and ``MAX_LISTED``, so a big
folder on a slow server is listed, and a server listing forever still runs out."""
"""Most messages one folder listing may name (it is held in memory)."""


def _too_many() -> ServerStalled:
    return ServerStalled(f"the server listed more than {MAX_LISTED} messages in one folder")


class FolderLister:
    """Lists the selected folder of one IMAP connection."""

    def __init__(self, conn: ImapConnection) -> None:
        self._conn = conn
        self.esearch_refused: Status | None = None
        """The server advertised ESEARCH and answered ``SEARCH RETURN`` with BAD."""

    def by_search(self, known: Collection[str], esearch: bool = False) -> list[MessageRef] | None:
        """List with two SEARCH lines; fetch details only for UIDs the caller does not know.

        Known UIDs come back with size 0: the caller has their details already. This makes
        the "nothing new" poll of a large folder two short responses instead of one line
        per message. With ``esearch`` (the server has RFC 4731 ESEARCH) both searches go
        out in one write and answer in UID ranges (``1:2000``), tagged, so they cannot be
        mixed up: one round trip instead of two, and no list of numbers to parse. A server
        that rejects the ESEARCH form it advertised gets plain SEARCH
        (``esearch_refused`` says so); one that rejects SEARCH itself gets None, and the
        caller lists with FETCH.
        """
        searched = self._esearch_all_and_unseen() if esearch else None
        if searched is not None:
            all_uids, unseen = searched
        else:
            plain_all = self._search(b"UID SEARCH ALL")
            plain_unseen = self._search(b"UID SEARCH UNSEEN") if plain_all is not None else None
            if plain_all is None or plain_unseen is None:
                return None
            all_uids, unseen = plain_all, set(plain_unseen)
        unknown = [uid for uid in all_uids if str(uid) not in known]
        details = {ref.number: ref for ref in self.by_fetch(unknown)} if unknown else {}
        refs = []
        for uid in sorted(set(all_uids)):
            if uid in details:
                refs.append(details[uid])
            elif str(uid) in known:
                refs.append(MessageRef(str(uid), uid, 0, uid not in unseen))
        return refs

    def search(self, command: bytes) -> list[int] | None:
        """The UIDs a ``UID SEARCH`` command finds; None if the server rejected it (BAD)."""
        return self._search(command)

    def _search(self, command: bytes) -> list[int] | None:
        """The UIDs of a UID SEARCH; None if the server rejected the command (BAD)."""
        results: list[int] = []

        def on_search(response: Response) -> None:
            if isinstance(response, Untagged) and response.name == "SEARCH":
                found = [v for v in response.values if isinstance(v, int)]
                if found:  # an empty line would be no progress
                    results.extend(found)
                    if len(results) > MAX_LISTED:
                        raise _too_many()
                    self._conn.useful()

        status = self._conn.command(command, on_search, line_limit=MAX_LISTING_LINE)
        if status.kind == "NO":
            raise TransientSourceError(
                f"server could not search the folder: {self._conn.redact(status.text)}"
            )
        if status.kind == "BAD":
            return None
        if any(not 0 < uid <= MAX_UID for uid in results):
            raise ProtocolViolation("server sent an invalid UID in a SEARCH response")
        return results

    def _esearch_all_and_unseen(self) -> tuple[list[int], set[int]] | None:
        """``UID SEARCH RETURN (ALL)`` of ALL and of UNSEEN, pipelined; ESEARCH replies.

        None if the server answered either with BAD or NO (an ESEARCH it does not have)."""
        commands = [b"UID SEARCH RETURN (ALL) ALL", b"UID SEARCH RETURN (ALL) UNSEEN"]
        tags = self._conn.send_commands(commands)
        sets: dict[str, str] = {}

        def on_esearch(response: Response) -> None:
            if isinstance(response, Untagged) and response.name == "ESEARCH":
                tag, uid_set = _esearch_result(response.values)
                if tag in tags and tag not in sets:
                    sets[tag] = uid_set
                    self._conn.useful()

        done = self._conn.wait_all(tags, on_esearch, line_limit=MAX_LISTING_LINE)
        limit = min(max(self._conn.numbers.exists or 0, SEARCH_LISTING_MAX), MAX_LISTED)
        found: list[list[int]] = []
        for tag in tags:
            status = done[tag]
            if status.kind != "OK":
                self.esearch_refused = status
                return None
            found.append(parse_uid_set(sets[tag], limit) if sets.get(tag) else [])
        return found[0], set(found[1])

    def by_fetch(self, uids: Sequence[int] = ()) -> list[MessageRef]:
        """UID, flags and size of every message (or of ``uids``), in UID order."""
        found: dict[int, MessageRef] = {}
        bound = [max(self._conn.numbers.exists or 0, 1000)]

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
            if uid not in found:
                self._conn.useful()
                if len(found) % LISTED_PER_PROGRESS == LISTED_PER_PROGRESS - 1:
                    self._conn.progress()  # a big folder listed slowly is not a stall
            found[uid] = MessageRef(str(uid), uid, size, response.seen())
            bound[0] = max(bound[0], self._conn.numbers.exists or 0)
            if len(found) > 2 * bound[0]:
                raise ProtocolViolation("server listed far more messages than the folder holds")
            if len(found) > MAX_LISTED:
                raise _too_many()

        for uid_set in compress_uids(uids) if uids else ["1:*"]:
            status = self._conn.command(
                b"UID FETCH %s (UID FLAGS RFC822.SIZE)" % uid_set.encode(),
                on_fetch,
                line_limit=MAX_LISTING_LINE,
            )
            if status.kind == "NO":
                raise TransientSourceError(
                    f"server could not list the folder: {self._conn.redact(status.text)}"
                )
            self._conn.check(status, "UID FETCH")
        return [found[uid] for uid in sorted(found)]


def _esearch_result(values: tuple[object, ...]) -> tuple[str | None, str]:
    """The correlating tag and the ALL set of an ESEARCH reply (RFC 4731), "" for none.

    ``* ESEARCH (TAG "M5") UID ALL 1:3,7``; a search that matched nothing has no ALL.
    """
    tag: str | None = None
    items = list(values)
    correlator = items[0] if items else None
    if isinstance(correlator, list):
        items.pop(0)
        if len(correlator) == 2 and str(correlator[0]).upper() == "TAG":
            raw = correlator[1]
            tag = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    if items and str(items[0]).upper() == "UID":
        items.pop(0)
    for name, value in zip(items[::2], items[1::2], strict=False):
        if str(name).upper() == "ALL":
            if not isinstance(value, int | str):
                raise ProtocolViolation("server sent a malformed ESEARCH ALL result")
            return tag, str(value)
    return tag, ""


def parse_uid_set(uid_set: str, limit: int) -> list[int]:
    """The sorted UIDs of a server's set (``1:5,7``; a ``sequence-set`` without ``*``).

    A server's word: malformed sets, UIDs out of range and sets naming more than ``limit``
    UIDs (``1:4294967295`` would be four billion) raise ProtocolViolation before anything
    is expanded.
    """
    bounds: list[tuple[int, int]] = []
    total = 0
    for part in uid_set.split(","):
        low, colon, high = part.partition(":")
        high = high if colon else low
        if _NUMBER.fullmatch(low) is None or _NUMBER.fullmatch(high) is None:
            raise ProtocolViolation(f"server sent a malformed UID set: {uid_set[:80]!r}")
        first, last = sorted((int(low), int(high)))
        if first < 1 or last > MAX_UID:
            raise ProtocolViolation(f"server sent an invalid UID in a set: {part[:40]!r}")
        total += last - first + 1
        if total > limit:
            raise ProtocolViolation(f"server's UID set names more than {limit} messages")
        bounds.append((first, last))
    return sorted({uid for first, last in bounds for uid in range(first, last + 1)})
