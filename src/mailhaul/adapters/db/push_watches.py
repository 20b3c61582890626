"""The push watchers' rows: which accounts may be watched, who watches each (a lease, so
one process at a time does), and in what state, for every process to show.

A row whose holder is dead (its lease ran out, or its process stopped beating in the
``workers`` table) is deleted by the next sync of any watcher (``purge``); each watcher
takes at most its share (``claim``'s ``limit``), so a worker started later gets some."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from mailhaul.adapters.db.account_rows import READ, account_from_row
from mailhaul.adapters.db.tables import accounts, push_watches, workers
from mailhaul.adapters.db.workers import ALIVE_WITHIN
from mailhaul.domain.account import Account
from mailhaul.domain.options import Protocol

MARKS = (accounts.c.updated_at, accounts.c.last_run_at)
"""Columns that move whenever what the watcher takes from an account row does: an edit of
the account (its spec, push, active; ``updated_at``) or a poll's end (its result, which
lets a watch whose login was refused try again; ``last_run_at``). A full read now and then
(``candidates(full=True)``) catches anything else."""
Marks = tuple[object, ...]


@dataclass(frozen=True)
class WatchRow:
    """One watched account's state as the watching process reported it."""

    account_id: int
    worker_id: str
    state: str
    since: float
    reason: str = ""
    events: int = 0
    connections: int = 0  # what the holder plans for the account (open or not)
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
        self._accounts: dict[int, tuple[tuple[object, ...], Marks, Account]] = {}  # candidates'

    def candidates(self, conn: Connection, default: bool, full: bool = True) -> list[Account]:
        """The accounts to watch: active, not paused, IMAP, push on (or unsaid while the
        setting push.enabled, ``default``, is on). Read every few seconds, so rows as before
        give the same Account; unless ``full``, only the rows whose ``Marks`` moved since
        the last call are read whole (an edit, a poll's end), the others are taken as kept."""
        c = accounts.c
        wanted = or_(c.push.is_(True), and_(c.push.is_(None), true() if default else false()))
        where = (
            c.active.is_(True),
            c.paused_reason.is_(None),
            c.protocol == str(Protocol.IMAP),
            wanted,
        )
        kept = self._accounts
        if full or not kept:
            rows = conn.execute(select(*READ).where(*where).order_by(c.id)).all()
        else:
            marks = conn.execute(select(c.id, *MARKS).where(*where).order_by(c.id)).all()
            moved = {r.id for r in marks if r.id not in kept or kept[r.id][1] != tuple(r[1:])}
            unmoved = {row.id: kept[row.id] for row in marks if row.id not in moved}
            self._accounts = unmoved  # in id order, as the query gave them
            if moved:
                rows = conn.execute(select(*READ).where(c.id.in_(moved), *where)).all()
                self._accounts = dict(sorted((unmoved | self._read(rows, kept)).items()))
            return [account for _, _, account in self._accounts.values()]
        self._accounts = self._read(rows, kept)
        return [account for _, _, account in self._accounts.values()]

    @staticmethod
    def _read(
        rows: Iterable[Row[Any]], kept: dict[int, tuple[tuple[object, ...], Marks, Account]]
    ) -> dict[int, tuple[tuple[object, ...], Marks, Account]]:
        found: dict[int, tuple[tuple[object, ...], Marks, Account]] = {}
        for row in rows:
            values, before = tuple(row), kept.get(row.id)
            account = before[2] if before is not None and before[0] == values else None
            marks = tuple(getattr(row, column.name) for column in MARKS)
            found[row.id] = (values, marks, account or account_from_row(row))
        return found

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
        are deleted; rows of dead holders are ``purge``'s."""
        if not ids:
            return set()
        room = len(ids) if limit is None else limit
        w = push_watches.c
        wanted = set(ids)
        rows = conn.execute(select(w.account_id, w.worker_id, w.lease_expires)).all()
        found = {int(row.account_id): row for row in rows if int(row.account_id) in wanted}
        held: set[int] = set()
        mine = [i for i, row in found.items() if row.worker_id == worker]
        gone = [
            int(r.account_id) for r in rows if r.worker_id == worker and r.account_id not in found
        ]
        self.release(conn, worker, gone)  # so that one UPDATE renews exactly the rows held
        if mine:
            conn.execute(
                update(push_watches).where(w.worker_id == worker).values(lease_expires=now + ttl)
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
                        connections=0,
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

    def planned_elsewhere(self, conn: Connection, worker: str, now: float) -> dict[int, int]:
        """The connections other live holders plan for their accounts (those with any)."""
        w = push_watches.c
        query = select(w.account_id, w.connections).where(
            w.worker_id != worker, w.lease_expires >= now, w.connections > 0
        )
        return {int(account_id): int(count) for account_id, count in conn.execute(query)}

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
                .values(
                    state=row.state,
                    since=row.since,
                    reason=row.reason,
                    events=row.events,
                    connections=row.connections,
                )
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
                connections=int(row.connections),
                lease_expires=float(row.lease_expires),
            )
            for row in conn.execute(query)
        }

    def counts(self, conn: Connection, now: float) -> dict[str, int]:
        """How many live watches are in each state."""
        w = push_watches.c
        query = select(w.state, func.count()).where(w.lease_expires >= now).group_by(w.state)
        return {str(state): int(count) for state, count in conn.execute(query)}
