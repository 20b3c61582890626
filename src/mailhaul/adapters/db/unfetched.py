"""Records of messages mailhaul does not fetch: those on the server before the first sync
wanted them (``new_only``, ``since``: state ``baseline``) and, on Gmail, a message's copies
under other labels once one copy is delivered (state ``delivered``, with its X-GM-MSGID,
and no delivery of their own). Both keep a message from ever being delivered (again)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, func, insert, select

from mailhaul.adapters.db.tables import messages
from mailhaul.domain.messages import RecordState

_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def add_baseline(
    conn: Connection, account_id: int, where: tuple[str, int], uids: Sequence[str], now: float
) -> None:
    """Note messages the first sync leaves alone (``where``: folder, UIDVALIDITY)."""
    _insert(conn, account_id, where, {uid: None for uid in uids}, (RecordState.BASELINE, now))


def add_duplicates(
    conn: Connection, account_id: int, where: tuple[str, int], ids: Mapping[str, str], now: float
) -> None:
    """Note Gmail copies (UID -> X-GM-MSGID) of messages delivered from another label."""
    _insert(conn, account_id, where, dict(ids), (RecordState.DELIVERED, now))


def delivered_gmail_ids(conn: Connection, account_id: int, ids: Iterable[str]) -> set[str]:
    """Which of these X-GM-MSGIDs the account has delivered (from any folder)."""
    found: set[str] = set()
    c = messages.c
    for chunk in _chunks(sorted(set(ids))):
        rows = conn.execute(
            select(c.gm_msgid).where(
                c.account_id == account_id,
                c.gm_msgid.in_(list(chunk)),
                c.state == RecordState.DELIVERED,
            )
        )
        found.update(row.gm_msgid for row in rows)
    return found


def _insert(
    conn: Connection,
    account_id: int,
    where: tuple[str, int],
    uids: Mapping[str, str | None],
    state: tuple[RecordState, float],
) -> None:
    folder, uidvalidity = where
    kind, now = state
    items = sorted(uids.items())
    for start in range(0, len(items), _CHUNK):
        conn.execute(
            insert(messages),
            [
                {
                    "account_id": account_id,
                    "folder": folder,
                    "uidvalidity": uidvalidity,
                    "uid": uid,
                    "state": kind.value,
                    "destination": "",
                    "gm_msgid": gm_msgid,
                    "recorded_at": now,
                }
                for uid, gm_msgid in items[start : start + _CHUNK]
            ],
        )


def first_recorded(conn: Connection, account_id: int, where: tuple[str, int]) -> float | None:
    """When the first record still kept for a folder (``where``: folder, UIDVALIDITY) was
    made: for an account that fetches new mail only, about when its first sync was."""
    folder, uidvalidity = where
    c = messages.c
    found = conn.execute(
        select(func.min(c.recorded_at)).where(
            c.account_id == account_id,
            c.folder == folder,
            c.uidvalidity == uidvalidity,
            c.state != RecordState.PENDING,
        )
    ).scalar()
    return None if found is None else float(found)
