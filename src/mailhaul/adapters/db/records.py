"""What was retrieved, per account, folder and UIDVALIDITY: pending, delivered, refused."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, insert, select, update

from mailhaul.adapters.db.tables import messages
from mailhaul.domain.messages import KnownMessages, RecordState

_CHUNK = 500


@dataclass(frozen=True)
class PendingRecord:
    """A delivery that was started but not confirmed (reconciled on the next run)."""

    folder: str
    uidvalidity: int
    uid: str
    receipt: str | None
    destination: str


@dataclass(frozen=True)
class DeliveredRecord:
    """A confirmed delivery, for the record."""

    uid: str
    fingerprint: str
    size: int
    gm_msgid: str | None = None  # Gmail's X-GM-MSGID, where the server gives it


@dataclass(frozen=True)
class RefusedRecord:
    """A message the local backend refused for good; it stays on the server."""

    folder: str
    uid: str
    note: str
    recorded_at: float


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def _delete_uids(
    conn: Connection,
    where: tuple[int, str, int],
    uids: Sequence[str],
    state: ColumnElement[bool],
) -> None:
    """Delete the records of ``uids`` in (account, folder, UIDVALIDITY) whose state matches."""
    account_id, folder, uidvalidity = where
    for chunk in _chunks(uids):
        conn.execute(
            delete(messages).where(
                messages.c.account_id == account_id,
                messages.c.folder == folder,
                messages.c.uidvalidity == uidvalidity,
                messages.c.uid.in_(chunk),
                state,
            )
        )


class MessageRecords:
    """The per-account memory that keeps mail from being delivered twice."""

    def known(
        self, conn: Connection, account_id: int, folder: str, uidvalidity: int
    ) -> KnownMessages:
        """Delivered and refused UIDs of one folder under one UIDVALIDITY."""
        c = messages.c
        rows = conn.execute(
            select(c.uid, c.state, c.size, c.recorded_at).where(
                c.account_id == account_id,
                c.folder == folder,
                c.uidvalidity == uidvalidity,
            )
        ).all()  # one fetchall: iterating the result would fetch row by row
        sizes: dict[str, int] = {}
        delivered_at: dict[str, float] = {}
        refused: set[str] = set()
        baseline: set[str] = set()
        for uid, state, size, recorded_at in rows:
            if state == RecordState.DELIVERED:
                sizes[uid] = size or 0
                delivered_at[uid] = recorded_at
            elif state == RecordState.REFUSED:
                refused.add(uid)
            elif state == RecordState.BASELINE:
                baseline.add(uid)
        return KnownMessages(
            frozenset(sizes), frozenset(refused), sizes, delivered_at, frozenset(baseline)
        )

    def add_pending(
        self, conn: Connection, account_id: int, records: Sequence[PendingRecord], now: float
    ) -> None:
        """Note deliveries about to start (with the sink's receipt, when it has one)."""
        if records:
            conn.execute(
                insert(messages),
                [
                    {
                        "account_id": account_id,
                        "folder": r.folder,
                        "uidvalidity": r.uidvalidity,
                        "uid": r.uid,
                        "state": RecordState.PENDING.value,
                        "receipt": r.receipt,
                        "destination": r.destination,
                        "recorded_at": now,
                    }
                    for r in records
                ],
            )

    def mark_delivered(
        self,
        conn: Connection,
        account_id: int,
        folder: str,
        uidvalidity: int,
        records: Sequence[DeliveredRecord],
        now: float,
    ) -> None:
        """Turn pending records into delivered ones (one executemany)."""
        if not records:
            return
        statement = (
            update(messages)
            .where(
                messages.c.account_id == account_id,
                messages.c.folder == folder,
                messages.c.uidvalidity == uidvalidity,
                messages.c.uid == bindparam("b_uid"),
            )
            .values(
                state=RecordState.DELIVERED.value,
                fingerprint=bindparam("b_fingerprint"),
                size=bindparam("b_size"),
                gm_msgid=bindparam("b_gm_msgid"),
                recorded_at=now,
            )
        )
        conn.execute(
            statement,
            [
                {
                    "b_uid": r.uid,
                    "b_fingerprint": r.fingerprint,
                    "b_size": r.size,
                    "b_gm_msgid": r.gm_msgid,
                }
                for r in records
            ],
        )

    def mark_refused(
        self,
        conn: Connection,
        account_id: int,
        folder: str,
        uidvalidity: int,
        refusals: Sequence[tuple[str, str]],
        now: float,
    ) -> None:
        """Turn pending records into refused ones, with the backend's words."""
        for uid, note in refusals:
            conn.execute(
                update(messages)
                .where(
                    messages.c.account_id == account_id,
                    messages.c.folder == folder,
                    messages.c.uidvalidity == uidvalidity,
                    messages.c.uid == uid,
                )
                .values(state=RecordState.REFUSED.value, note=note, recorded_at=now)
            )

    def refused(self, conn: Connection, account_id: int) -> list[RefusedRecord]:
        """Messages the backend refused for good, oldest first."""
        rows = conn.execute(
            select(messages)
            .where(messages.c.account_id == account_id, messages.c.state == RecordState.REFUSED)
            .order_by(messages.c.recorded_at)
        )
        return [RefusedRecord(r.folder, r.uid, r.note or "", r.recorded_at) for r in rows]

    def clear_refused(self, conn: Connection, account_id: int, uid: str | None = None) -> int:
        """Forget refusals (all, or one UID) so the next run tries again; how many."""
        query = delete(messages).where(
            messages.c.account_id == account_id, messages.c.state == RecordState.REFUSED
        )
        if uid is not None:
            query = query.where(messages.c.uid == uid)
        return int(conn.execute(query).rowcount)

    def add_delivered(
        self,
        conn: Connection,
        account_id: int,
        folder: str,
        uidvalidity: int,
        destination: str,
        records: Sequence[DeliveredRecord],
        now: float,
    ) -> None:
        """Record deliveries directly (matched after a UIDVALIDITY change)."""
        if records:
            conn.execute(
                insert(messages),
                [
                    {
                        "account_id": account_id,
                        "folder": folder,
                        "uidvalidity": uidvalidity,
                        "uid": r.uid,
                        "state": RecordState.DELIVERED.value,
                        "destination": destination,
                        "fingerprint": r.fingerprint,
                        "size": r.size,
                        "recorded_at": now,
                    }
                    for r in records
                ],
            )

    def pending(self, conn: Connection, account_id: int) -> list[PendingRecord]:
        """Deliveries a crashed run left unconfirmed."""
        rows = conn.execute(
            select(messages).where(
                messages.c.account_id == account_id, messages.c.state == RecordState.PENDING
            )
        )
        return [
            PendingRecord(r.folder, r.uidvalidity, r.uid, r.receipt, r.destination) for r in rows
        ]

    def confirm_pending(
        self, conn: Connection, account_id: int, record: PendingRecord, now: float
    ) -> None:
        """A pending delivery turned out to have happened."""
        conn.execute(
            update(messages)
            .where(
                messages.c.account_id == account_id,
                messages.c.folder == record.folder,
                messages.c.uidvalidity == record.uidvalidity,
                messages.c.uid == record.uid,
                messages.c.state == RecordState.PENDING,
            )
            .values(state=RecordState.DELIVERED.value, recorded_at=now)
        )

    def drop_pending(
        self, conn: Connection, account_id: int, folder: str, uidvalidity: int, uids: Sequence[str]
    ) -> None:
        """Forget pending records of deliveries that did not happen."""
        where = (account_id, folder, uidvalidity)
        _delete_uids(conn, where, uids, messages.c.state == RecordState.PENDING)

    def prune(
        self, conn: Connection, account_id: int, folder: str, uidvalidity: int, gone: Sequence[str]
    ) -> None:
        """Forget records of messages no longer on the server, and of old UIDVALIDITYs."""
        conn.execute(
            delete(messages).where(
                messages.c.account_id == account_id,
                messages.c.folder == folder,
                messages.c.uidvalidity != uidvalidity,
                messages.c.state != RecordState.PENDING,
            )
        )
        handled = messages.c.state != RecordState.PENDING
        _delete_uids(conn, (account_id, folder, uidvalidity), gone, handled)

    def delivered_prints(
        self, conn: Connection, account_id: int, folder: str, uidvalidity: int, uids: Sequence[str]
    ) -> dict[str, DeliveredRecord]:
        """What was recorded at delivery (fingerprint, listed size) for some delivered UIDs."""
        found: dict[str, DeliveredRecord] = {}
        for chunk in _chunks(uids):
            rows = conn.execute(
                select(messages.c.uid, messages.c.fingerprint, messages.c.size).where(
                    messages.c.account_id == account_id,
                    messages.c.folder == folder,
                    messages.c.uidvalidity == uidvalidity,
                    messages.c.uid.in_(chunk),
                    messages.c.state == RecordState.DELIVERED,
                )
            ).all()
            for uid, print_, size in rows:
                found[uid] = DeliveredRecord(uid, print_ or "", int(size or 0))
        return found

    def forget(
        self, conn: Connection, account_id: int, folder: str, uidvalidity: int, uids: Sequence[str]
    ) -> None:
        """Forget handled records (delivered or refused) of UIDs the server now gives to other
        mail."""
        handled = messages.c.state != RecordState.PENDING
        _delete_uids(conn, (account_id, folder, uidvalidity), uids, handled)

    def fingerprints(self, conn: Connection, account_id: int, folder: str) -> set[str]:
        """Fingerprints of everything delivered from a folder, under any UIDVALIDITY."""
        rows = conn.execute(
            select(messages.c.fingerprint).where(
                messages.c.account_id == account_id,
                messages.c.folder == folder,
                messages.c.state == RecordState.DELIVERED,
                messages.c.fingerprint.is_not(None),
            )
        )
        return {row.fingerprint for row in rows}

    # folder UIDVALIDITY ------------------------------------------------------------------
    # import / export (issue 6) -----------------------------------------------------------
    def recorded_uids(
        self, conn: Connection, account_id: int, folder: str, uidvalidity: int
    ) -> set[str]:
        """Every UID recorded for a folder under one UIDVALIDITY, in any state."""
        rows = conn.execute(
            select(messages.c.uid).where(
                messages.c.account_id == account_id,
                messages.c.folder == folder,
                messages.c.uidvalidity == uidvalidity,
            )
        )
        return {row.uid for row in rows}

    def handled_rows(self, conn: Connection, account_id: int) -> list[dict[str, Any]]:
        """An account's delivered and refused records (not pending ones), for export."""
        rows = conn.execute(
            select(messages)
            .where(
                messages.c.account_id == account_id,
                messages.c.state != RecordState.PENDING,
            )
            .order_by(messages.c.folder, messages.c.uidvalidity, messages.c.uid)
        )
        return [
            {
                "folder": r.folder,
                "uidvalidity": int(r.uidvalidity),
                "uid": r.uid,
                "state": r.state,
                "destination": r.destination,
                "fingerprint": r.fingerprint,
                "size": int(r.size),
                "recorded_at": r.recorded_at,
                "note": r.note,
            }
            for r in rows
        ]

    def add_handled(
        self, conn: Connection, account_id: int, rows: Sequence[dict[str, Any]], now: float
    ) -> None:
        """Insert delivered/refused records as given (imported state); the caller skips UIDs
        that are already recorded."""
        if rows:
            conn.execute(
                insert(messages),
                [
                    {
                        "account_id": account_id,
                        "folder": r["folder"],
                        "uidvalidity": r["uidvalidity"],
                        "uid": r["uid"],
                        "state": RecordState(r.get("state", "delivered")).value,
                        "destination": r["destination"],
                        "fingerprint": r.get("fingerprint"),
                        "size": r.get("size") or 0,
                        "recorded_at": r.get("recorded_at") or now,
                        "note": r.get("note"),
                    }
                    for r in rows
                ],
            )


__all__ = ["DeliveredRecord", "MessageRecords", "PendingRecord"]
