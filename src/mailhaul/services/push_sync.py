"""The push watcher's dealings with the database: at each sync, which accounts it watches
(a lease each in ``push_watches``, at most its share of them) and the rows of dead processes
deleted; every second, the account states that changed since they were written."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.domain.account import Account
from mailhaul.domain.errors import StorageError
from mailhaul.services.leases import dead_local_owner
from mailhaul.services.push_connect import Opener
from mailhaul.services.push_plan import WatchPlan, capped_words, share
from mailhaul.services.push_watch import Row, Watch, account_row
from mailhaul.settings import Settings

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink

logger = logging.getLogger(__name__)

FULL_SYNC_EVERY = 60.0
"""Seconds between syncs that read every watched account's row whole; the syncs between
read only the rows an edit or a poll moved (anything else shows within this time)."""
LEASE = 30.0
"""Seconds a watch lease lasts unless renewed (every sync): another process takes over the
watches of one that died after this at most (at once when it was on this host, or once it
stops beating in the workers table)."""


@dataclass(frozen=True)
class PushDeps:
    """What the watcher needs: the database, its rows, how to open and politely leave
    connections (``idle_link.leave_all``), to ask for a poll, and the settings in force."""

    db: Database
    store: PushWatchStore
    open_link: Opener
    leave_all: Callable[[list[IdleLink], float], None]
    request: Callable[[int], None]
    settings: Callable[[], Settings]


@dataclass(frozen=True)
class Share:
    """What a sync found: the accounts to watch (``wanted``), those this worker holds now
    (``held``, at most its share among the live processes), those it holds over that share
    (``over``: the caller closes their connections, then releases their rows for the
    others to take, in that order, so that no account has two watchers even for a moment),
    and the connections other processes plan for the rest (``elsewhere``, by account)."""

    wanted: dict[int, Account]
    held: list[int]
    over: list[int]
    elsewhere: dict[int, int]


def claim_share(
    conn: Connection, deps: PushDeps, worker: str, now: float, full: bool = True
) -> Share:
    """This worker's ``Share``. Rows of dead processes are deleted first. Unless ``full``,
    only the account rows that moved are read whole (``PushWatchStore.candidates``)."""
    settings, store = deps.settings(), deps.store
    wanted = {
        account.id: account
        for account in store.candidates(conn, settings.push_enabled, full)
        if not capped_words(account.spec.host, settings.limits.connections_for(account.spec.host))
    }
    beating = store.live_workers(conn, now)
    alive = {other for other in beating if not dead_local_owner(other)} | {worker}
    store.purge(conn, now, alive)  # also the rows of processes gone from this host
    most = share(len(wanted), len(alive))
    held = sorted(store.claim(conn, wanted, worker, now, LEASE, limit=most))
    elsewhere = store.planned_elsewhere(conn, worker, now) if len(alive) > 1 else {}
    return Share(wanted, held[:most], held[most:], elsewhere)


def changed_rows(
    watches: Iterable[Watch], plans: dict[int, WatchPlan], reported: dict[int, Row]
) -> dict[int, Row]:
    """Each account's state made of its connections', where it differs from ``reported``."""
    by_account: dict[int, list[Watch]] = {}
    for watch in watches:
        by_account.setdefault(watch.account.id, []).append(watch)
    changed: dict[int, Row] = {}
    for account_id, plan in plans.items():
        mine = by_account.get(account_id, [])
        if not mine:  # the mailbox's cap is taken by the watches of its other accounts
            row: Row = ("capped", 0.0, plan.capped, 0, 0)
        else:
            notifying = any(w.link is not None and w.link.notify is not None for w in mine)
            row = account_row(mine, plan.notify_detail if notifying else plan.detail)
        if reported.get(account_id) != row:
            changed[account_id] = row
    return changed


class RowReporter:
    """What ``push_watches`` shows of this worker's accounts, written where it changed:
    the watcher ``touch``es an account when something of its row may have (a state, an
    event, a plan), so a second's report looks at those only, not at every account."""

    def __init__(self, deps: PushDeps, worker_id: str) -> None:
        self._deps = deps
        self._worker_id = worker_id
        self._reported: dict[int, Row] = {}  # what the database shows
        self._touched: set[int] = set()  # accounts whose row may differ from it

    def touch(self, account_id: int) -> None:
        """Something of the account's row may have changed."""
        self._touched.add(account_id)

    def forget(self, account_id: int) -> None:
        """The account is no longer watched here (its row is released)."""
        self._reported.pop(account_id, None)
        self._touched.discard(account_id)

    def release(self, account_ids: list[int]) -> None:
        """Let other processes take these accounts (call once their connections closed)."""
        if account_ids:
            with contextlib.suppress(StorageError), self._deps.db.begin() as conn:
                self._deps.store.release(conn, self._worker_id, account_ids)

    def write(self, plans: dict[int, WatchPlan], of: Callable[[int], list[Watch]]) -> None:
        """Write the rows of the touched accounts that differ (``of``: an account's
        watches); a failed write is tried again at the next call."""
        if not self._touched:
            return
        touched, self._touched = self._touched, set()
        mine = {i: plans[i] for i in touched if i in plans}
        changed = changed_rows([w for i in mine for w in of(i)], mine, self._reported)
        if not changed:
            return
        rows = [WatchRow(i, self._worker_id, *row) for i, row in changed.items()]
        try:
            with self._deps.db.begin() as conn:
                self._deps.store.report(conn, self._worker_id, rows)
        except StorageError as exc:
            logger.error("push: cannot write the watch states: %s", exc)
            self._touched.update(changed)
            return
        self._reported.update(changed)
