"""The push watchers' rows: which accounts may be watched, who watches each (a lease, so
one process at a time does), and in what state, for every process to show.

A row whose holder is dead (its lease ran out, or its process stopped beating in the
``workers`` table) is deleted by the next sync of any watcher (``purge``); each watcher
takes at most its share (``claim``'s ``limit``), so a worker started later gets some."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, false, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from mailhaul.adapters.db.account_rows import READ, account_from_row
from mailhaul.adapters.db.tables import accounts, push_watches, workers
from mailhaul.adapters.db.workers import ALIVE_WITHIN
from mailhaul.domain.account import Account
from mailhaul.domain.options import Protocol


@dataclass(frozen=True)
class WatchRow:
    """One watched account's state as the watching process reported it."""

    account_id: int
    worker_id: str
    state: str
    since: float
    reason: str = ""
    events: int = 0
    lease_expires: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "events": self.events,
            "worker_id": self.worker_id,
        }


class PushWatchStore:
    """Rows of ``push_watches``; every method runs inside the caller's transaction."""

    def __init__(self) -> None:
        self._accounts: dict[int, tuple[tuple[object, ...], Account]] = {}  # candidates'

    def candidates(self, conn: Connection, default: bool) -> list[Account]:
        """The accounts to watch: active, not paused, IMAP, push on (or unsaid while the
        setting push.enabled, ``default``, is on)."""
        c = accounts.c
        wanted = or_(c.push.is_(True), and_(c.push.is_(None), true() if default else false()))
        query = select(*READ).where(
            c.active.is_(True),
            c.paused_reason.is_(None),
            c.protocol == str(Protocol.IMAP),
            wanted,
        )
        found: dict[int, tuple[tuple[object, ...], Account]] = {}
        for row in conn.execute(query.order_by(c.id)):
            values = tuple(row)
            kept = self._accounts.get(row.id)
            account = kept[1] if kept is not None and kept[0] == values else account_from_row(row)
            found[row.id] = (values, account)
        self._accounts = found  # read every few seconds: rows as before give the same Account
        return [account for _, account in found.values()]

    def claim(
        self,
        conn: Connection,
        ids: Collection[int],
        worker: str,
        now: float,
        ttl: float,
        limit: int | None = None,
    ) -> set[int]:
        """Of ``ids``, those this ``worker`` watches now: its own rows (lease renewed), rows
        whose lease ran out (taken over) and accounts nobody watched (a row added), at most
        ``limit`` in all (its own first: those over the limit are renewed too, for the
        caller to ``release``). Rows of accounts no longer in ``ids`` that this worker holds
        are left for ``release``; rows of dead holders are ``purge``'s."""
        if not ids:
            return set()
        room = len(ids) if limit is None else limit
        w = push_watches.c
        rows = conn.execute(
            select(w.account_id, w.worker_id, w.lease_expires).where(w.account_id.in_(list(ids)))
        ).all()
        found = {int(row.account_id): row for row in rows}
        held: set[int] = set()
        mine = [i for i, row in found.items() if row.worker_id == worker]
        if mine:
            conn.execute(
                update(push_watches)
                .where(w.account_id.in_(mine), w.worker_id == worker)
                .values(lease_expires=now + ttl)
            )
            held.update(mine)
        for account_id, row in found.items():
            free = row.lease_expires < now
            if row.worker_id != worker and free and len(held) < room:
                taken = conn.execute(
                    update(push_watches)
                    .where(w.account_id == account_id, w.worker_id == row.worker_id)
                    .values(
                        worker_id=worker,
                        lease_expires=now + ttl,
                        state="connecting",
                        since=now,
                        reason="",
                        events=0,
                    )
                )
                if taken.rowcount == 1:
                    held.add(account_id)
        for account_id in (i for i in ids if i not in found):
            if len(held) >= room:
                break
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(push_watches).values(
                            account_id=account_id,
                            worker_id=worker,
                            lease_expires=now + ttl,
                            state="connecting",
                            since=now,
                        )
                    )
            except IntegrityError:  # another process took it (or the account went)
                continue
            held.add(account_id)
        return held

    def live_workers(self, conn: Connection, now: float) -> set[str]:
        """The `serve`/`worker` processes that beat recently (each runs a watcher)."""
        query = select(workers.c.id).where(workers.c.heartbeat_at >= now - ALIVE_WITHIN)
        return {str(worker) for worker in conn.scalars(query)}

    def purge(self, conn: Connection, now: float, alive: Collection[str]) -> int:
        """Delete the rows of dead holders: lease run out, or not among the ``alive``
        processes; how many went."""
        w = push_watches.c
        query = delete(push_watches).where(
            or_(w.lease_expires < now, w.worker_id.not_in(list(alive)))
        )
        return int(conn.execute(query).rowcount or 0)

    def report(self, conn: Connection, worker: str, rows: Iterable[WatchRow]) -> None:
        """Write the state of watches this worker holds (rows it lost are left alone)."""
        w = push_watches.c
        for row in rows:
            conn.execute(
                update(push_watches)
                .where(w.account_id == row.account_id, w.worker_id == worker)
                .values(state=row.state, since=row.since, reason=row.reason, events=row.events)
            )

    def release(self, conn: Connection, worker: str, ids: Collection[int] | None = None) -> None:
        """Forget this worker's watches (``ids``, or all of them)."""
        w = push_watches.c
        query = delete(push_watches).where(w.worker_id == worker)
        if ids is not None:
            if not ids:
                return
            query = query.where(w.account_id.in_(list(ids)))
        conn.execute(query)

    def rows(self, conn: Connection, ids: Collection[int] | None = None) -> dict[int, WatchRow]:
        """The watch rows (of ``ids``, or all), with their lease's end (a row past it is a
        dead process's and says nothing about now)."""
        w = push_watches.c
        query = select(push_watches)
        if ids is not None:
            query = query.where(w.account_id.in_(list(ids)))
        return {
            int(row.account_id): WatchRow(
                account_id=int(row.account_id),
                worker_id=row.worker_id,
                state=row.state,
                since=float(row.since),
                reason=row.reason,
                events=int(row.events),
                lease_expires=float(row.lease_expires),
            )
            for row in conn.execute(query)
        }

    def counts(self, conn: Connection, now: float) -> dict[str, int]:
        """How many live watches are in each state."""
        w = push_watches.c
        query = select(w.state, func.count()).where(w.lease_expires >= now).group_by(w.state)
        return {str(state): int(count) for state, count in conn.execute(query)}
