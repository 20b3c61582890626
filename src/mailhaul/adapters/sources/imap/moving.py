"""IMAP commands beyond listing and fetching: moving mail out of a folder after delivery
(``--move-to``: the folder made if missing, MOVE (RFC 6851) or COPY + \\Deleted +
expunge), the first sync's ``SEARCH BEFORE``, and Gmail's X-GM-MSGID of each message."""

from __future__ import annotations

import datetime

from mailhaul.adapters.sources.imap.commands import compress_uids
from mailhaul.adapters.sources.imap.parser import Fetch, Response, Untagged
from mailhaul.adapters.sources.imap.session import ImapConnection

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def ensure_folder(conn: ImapConnection, target: bytes, encoded: str) -> bool:
    """``LIST`` the folder (``target``: quoted for the wire; ``encoded``: its name as the
    server spells it); ``CREATE`` it unless listed. Whether it was created."""
    conn.drain()
    listed: list[Untagged] = []

    def on_list(response: Response) -> None:
        if isinstance(response, Untagged) and response.name == "LIST" and response.values[2:]:
            name = response.values[2]
            if (
                name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            ) == encoded:
                listed.append(response)

    conn.check(conn.command(b'LIST "" ' + target, on_list), f"LIST {encoded!r}")
    if listed:
        return False
    conn.check(conn.command(b"CREATE " + target), f"CREATE {encoded!r}")
    return True


def move_commands(
    uids: list[int], target: bytes, move: bool, uidplus: bool
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The commands that move ``uids`` to ``target``, in three steps each sent once the one
    before succeeded: ``UID MOVE`` alone; or ``UID COPY``, then ``\\Deleted``, then the
    expunge (only those messages with UIDPLUS; an EXPUNGE pipelined behind the STORE may
    not see the flag)."""
    sets = [uid_set.encode() for uid_set in compress_uids(uids)]
    if move:
        return [b"UID MOVE " + s + b" " + target for s in sets], [], []
    copy = [b"UID COPY " + s + b" " + target for s in sets]
    flags = [b"UID STORE " + s + b" +FLAGS.SILENT (\\Deleted)" for s in sets]
    expunge = [b"UID EXPUNGE " + s for s in sets] if uidplus else [b"EXPUNGE"]
    return copy, flags, expunge


def search_before(uids: list[int], day: datetime.date) -> list[bytes]:
    """``UID SEARCH UID <set> BEFORE <day>`` commands covering ``uids``."""
    when = f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}".encode()
    return [b"UID SEARCH UID " + s.encode() + b" BEFORE " + when for s in compress_uids(uids)]


MAX_GMAIL_ID = 2**64


def gmail_ids(conn: ImapConnection, uids: list[int]) -> dict[str, str]:
    """UID -> X-GM-MSGID of the messages ``uids`` of the selected folder."""
    found: dict[str, str] = {}
    wanted = set(uids)

    def on_fetch(response: Response) -> None:
        if isinstance(response, Fetch):
            uid, value = response.uid(), response.items.get("X-GM-MSGID")
            if uid in wanted and isinstance(value, int) and 0 < value < MAX_GMAIL_ID:
                found[str(uid)] = str(value)

    for uid_set in compress_uids(uids):
        command = b"UID FETCH " + uid_set.encode() + b" (UID X-GM-MSGID)"
        conn.check(conn.command(command, on_fetch), "UID FETCH X-GM-MSGID")
    return found
