"""The push watcher's dealings with the database at each sync: which accounts it watches
(a lease each in ``push_watches``, at most its share of them), the rows of dead processes
deleted, and which account states changed since they were written."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.push_watches import PushWatchStore
from mailhaul.domain.account import Account
from mailhaul.services.leases import dead_local_owner
from mailhaul.services.push_connect import Opener
from mailhaul.services.push_plan import WatchPlan, capped_words, share
from mailhaul.services.push_watch import Row, Watch, account_row
from mailhaul.settings import Settings

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink

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


def claim_share(
    conn: Connection, deps: PushDeps, worker: str, now: float
) -> tuple[dict[int, Account], list[int]]:
    """The accounts to watch (those whose connection cap leaves room for a watch) and,
    of them, the ones ``worker`` holds now: at most its share among the live processes
    (the rows over it are released here, for the others to take at their next sync).
    Rows of dead processes are deleted first."""
    settings, store = deps.settings(), deps.store
    wanted = {
        account.id: account
        for account in store.candidates(conn, settings.push_enabled)
        if not capped_words(account.spec.host, settings.limits.connections_for(account.spec.host))
    }
    beating = store.live_workers(conn, now)
    alive = {other for other in beating if not dead_local_owner(other)} | {worker}
    store.purge(conn, now, alive)  # also the rows of processes gone from this host
    most = share(len(wanted), len(alive))
    held = sorted(store.claim(conn, wanted, worker, now, LEASE, limit=most))
    store.release(conn, worker, held[most:])
    return wanted, held[:most]


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
            row: Row = ("capped", 0.0, plan.capped, 0)
        else:
            notifying = any(w.link is not None and w.link.notify is not None for w in mine)
            row = account_row(mine, plan.notify_detail if notifying else plan.detail)
        if reported.get(account_id) != row:
            changed[account_id] = row
    return changed
