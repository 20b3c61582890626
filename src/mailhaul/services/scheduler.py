"""The poll loop of `mailhaul serve` / `mailhaul worker`.

Due accounts ("fetch now" requests first, then by next-poll time) are claimed through the
database with a lease, so several processes on several machines can share the work and
an account is never polled twice at once. Polls run in a bounded thread pool, with at
most ``per_host_limit`` at a time against one source host, and within the connection cap of
one remote mailbox (``limits.connections_per_account``: host and user name; a poll takes one
connection, push watches of this process may hold others). A stop request lets running
polls finish the message in hand, record it and log out, for at most ``grace`` seconds; then
the connections of the polls still running are cut (``RunGuard.cancel``: a blocked read
wakes at once, the message in hand is not recorded and stays on the server), and they get
``CANCEL_WAIT`` more seconds to write their run records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from sqlalchemy import Connection

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.mailbox_load import MailboxLoad, held_elsewhere
from mailhaul.adapters.db.workers import HEARTBEAT_EVERY, WorkerStore
from mailhaul.domain.account import Trigger
from mailhaul.domain.errors import AccountBusy, MailhaulError, StorageError
from mailhaul.domain.scheduling import PollResult
from mailhaul.services.leases import new_owner
from mailhaul.services.polling import Poller, RunSummary

logger = logging.getLogger(__name__)

IDLE_WAIT = 1.0
CANCEL_WAIT = 5.0
"""Seconds polls get, after their connections were cut at the end of the grace period, to
record their runs."""
REQUESTS_EVERY = 1.0
"""Seconds between looks for "fetch now" requests. Finding them reads every account row
(there is no index on requests), so a claim right after a poll finished leaves them out
unless this long has passed; accounts due by time are found through an index at once."""
DEAD_HOLDERS_EVERY = 5.0
"""Seconds between looks for leases held by dead processes on this host (a `serve` or
`fetch` that was killed): their accounts are claimed at once, not after the lease's TTL.
The first claim of a (re)started scheduler looks."""
ResultHook = Callable[[RunSummary], None]
MailboxKey = tuple[str, str, str]
"""A remote mailbox: the protocol, its source host and user name, lower-case (providers
count connections per mailbox and protocol, whichever of our accounts opens them)."""


@dataclass(frozen=True)
class Claimed:
    """An account this scheduler leased: its source host, the lease's owner name and the
    trigger its run records."""

    account_id: int
    host: str
    owner: str
    trigger: str
    mailbox: MailboxKey = ("", "", "")


Inflight = dict[int, tuple[Claimed, "Future[RunSummary | None]"]]
"""The polls running: each claim with its future, by account."""


@dataclass(frozen=True)
class PollLimits:
    """How many polls run at once: in all, and against one source host."""

    workers: int
    per_host_limit: int = 4
    connection_cap: Callable[[str], int | None] = lambda host: None
    """The connections one remote mailbox on this host may have at once (None: any)."""


@dataclass(frozen=True)
class SchedulerControls:
    """How the caller steers the loop and hears from it: the stop request, a call with each
    run's result, a call at each heartbeat."""

    stop: threading.Event | None = None
    on_result: ResultHook | None = None
    periodic: Callable[[], None] | None = None


class Scheduler:
    """Polls every active account when it is due, ``workers`` at a time."""

    def __init__(
        self,
        db: Database,
        accounts: AccountStore,
        poller: Poller,
        limits: PollLimits,
        controls: SchedulerControls | None = None,
    ) -> None:
        controls = controls or SchedulerControls()
        self.db = db
        self.accounts = accounts
        self.poller = poller
        self.workers = limits.workers
        self.per_host_limit = limits.per_host_limit
        self.connection_cap = limits.connection_cap
        self.watching: Callable[[MailboxKey], int] = lambda mailbox: 0
        """Connections this process's push watcher holds to a remote mailbox."""
        self.stop = controls.stop or threading.Event()
        self.on_result = controls.on_result
        self.periodic = controls.periodic
        self.worker_id = new_owner()
        self.worker_store = WorkerStore()
        self._wake = threading.Event()
        self._requests_at = 0.0  # monotonic time of the next look for "fetch now" requests
        self._dead_at = 0.0  # monotonic time of the next look for dead local lease holders
        self._alone = True  # no other scheduler beat at the last heartbeat

    def wake(self) -> None:
        """From any thread of this process: a "fetch now" request was just made (a push
        event); look for requests at once rather than at the next look."""
        self._requests_at = 0.0
        self._wake.set()

    def _poll(self, claimed: Claimed) -> RunSummary | None:
        account_id = claimed.account_id
        try:
            summary = self.poller.poll(
                account_id, trigger=claimed.trigger, stop=self.stop, lease_owner=claimed.owner
            )
        except AccountBusy:
            return None
        except MailhaulError as exc:
            logger.warning("account %s: %s", account_id, exc)
            return None
        finally:
            self._wake.set()  # a slot is free: look for more work at once
        outcome = "ok" if summary.result == PollResult.OK else f"error: {summary.error}"
        logger.info(
            "account %s: %s, %d fetched, %d deleted",
            account_id,
            outcome,
            summary.fetched,
            summary.deleted,
        )
        if self.on_result is not None:
            try:
                self.on_result(summary)
            except Exception:
                logger.exception("result hook failed")
        return summary

    def _claim(self, inflight: Inflight) -> list[Claimed]:
        """Lease due accounts for the free slots, within the per-host limit.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers never wait on each other. Each
        claim says who asked for its run (a "fetch now" from the web, CLI, API or cron), or
        ``schedule``.
        """
        free = self.workers - len(inflight)
        if free <= 0:
            return []
        hosts = Counter(claim.host for claim, _ in inflight.values())
        mailboxes = Counter(claim.mailbox for claim, _ in inflight.values())
        full = [host for host, count in hosts.items() if count >= self.per_host_limit]
        owner = new_owner()
        claimed: list[Claimed] = []
        requested = time.monotonic() >= self._requests_at
        with self.db.begin() as conn:
            now = time.time()
            ids = self.accounts.claim_due(
                conn,
                owner,
                now,
                self.poller.leases.ttl,
                free,
                steal_from=self._dead_holders(conn, now),
                exclude_hosts=full,
                requested=requested,
            )
            mailbox_of = self.accounts.mailboxes_of(conn, ids)
            load = self._elsewhere(conn, set(mailbox_of.values()), [*inflight, *ids], now)
            kept = []
            for account_id in ids:
                mailbox = mailbox_of[account_id]
                _, host, _ = mailbox
                # several on one host, or on one remote mailbox, in this batch or running
                capped = self._mailbox_full(mailbox, mailboxes, load)
                if hosts[host] >= self.per_host_limit or capped:
                    self.accounts.give_back(conn, account_id, owner, now)  # its request stays
                    continue
                hosts[host] += 1
                mailboxes[mailbox] += 1
                kept.append(account_id)
            asked = self.accounts.take_triggers(conn, kept)
            for account_id in kept:
                trigger = asked.get(account_id, Trigger.SCHEDULE)
                mailbox = mailbox_of[account_id]
                claimed.append(Claimed(account_id, mailbox[1], owner, trigger, mailbox))
        if requested:
            self._requests_at = time.monotonic() + REQUESTS_EVERY
        return claimed

    def _mailbox_full(
        self, mailbox: MailboxKey, polls: Counter[MailboxKey], load: MailboxLoad
    ) -> bool:
        """True when one more poll would take the remote mailbox past its connection cap:
        polls running plus push watches, of this process and of others (``load``); one
        poll at a time is always allowed (the watches always leave it a connection)."""
        cap = self.connection_cap(mailbox[1])
        if cap is None:
            return False
        watches = self.watching(mailbox) + load.watches[mailbox]
        return polls[mailbox] + load.polls[mailbox] >= max(1, cap - watches)

    def _elsewhere(
        self, conn: Connection, mailboxes: set[MailboxKey], mine: list[int], now: float
    ) -> MailboxLoad:
        """Other processes' connections to the capped ones of ``mailboxes`` (none looked
        for while this is the only scheduler beating: the query reads every account)."""
        capped = {m for m in mailboxes if self.connection_cap(m[1]) is not None}
        if self._alone or not capped:
            return MailboxLoad()
        return held_elsewhere(conn, capped, self.worker_id, mine, now)

    def _dead_holders(self, conn: Connection, now: float) -> list[str]:
        """Dead local lease holders, looked for every DEAD_HOLDERS_EVERY seconds."""
        if time.monotonic() < self._dead_at:
            return []
        self._dead_at = time.monotonic() + DEAD_HOLDERS_EVERY
        dead = self.poller.leases.dead_local_holders(conn, now)
        if dead:
            logger.info("taking over the leases of %d dead process(es) on this host", len(dead))
        return dead

    def run(self, grace: float = 60.0) -> None:
        """Poll until ``stop`` is set; then let running polls finish (at most ``grace`` s)."""
        inflight: Inflight = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="poll")
        self._beat(register=True)
        next_beat = time.monotonic() + HEARTBEAT_EVERY
        try:
            while not self.stop.is_set():
                for account_id, (_, future) in list(inflight.items()):
                    if future.done():
                        del inflight[account_id]
                try:
                    for claim in self._claim(inflight):
                        future = pool.submit(self._poll, claim)
                        inflight[claim.account_id] = (claim, future)
                except StorageError as exc:  # e.g. PostgreSQL restarting: try again soon
                    logger.error("cannot claim due accounts: %s", exc)
                if time.monotonic() >= next_beat:
                    self._beat(running=len(inflight))
                    next_beat = time.monotonic() + HEARTBEAT_EVERY
                self._wake.wait(IDLE_WAIT)
                self._wake.clear()
        finally:
            self.stop.set()
            if inflight:
                logger.info("stopping: waiting for %d running poll(s)", len(inflight))
                futures = [future for _, future in inflight.values()]
                _, still = wait(futures, timeout=grace)
                if still:
                    self._cut(len(still), grace)
                    wait(still, timeout=CANCEL_WAIT)
            pool.shutdown(wait=False, cancel_futures=True)
            self._beat(unregister=True)

    def _cut(self, running: int, grace: float) -> None:
        """Cut the connections of the polls still running after the grace period."""
        logger.warning(
            "stopping: %d poll(s) still running after %g s; cutting their connections",
            running,
            grace,
        )
        self.poller.running.cancel_all(
            f"the service is stopping: the connection was cut after the {grace:g} s grace period"
        )

    def _beat(self, register: bool = False, unregister: bool = False, running: int = 0) -> None:
        """Heartbeat in the workers table (and the periodic housekeeping)."""
        now = time.time()
        try:
            with self.db.begin() as conn:
                if register:
                    self.worker_store.forget_dead(conn, now)
                    self.worker_store.register(conn, self.worker_id, now)
                elif unregister:
                    self.worker_store.unregister(conn, self.worker_id)
                else:
                    self.worker_store.heartbeat(conn, self.worker_id, now, running)
                self._alone = self.worker_store.alive(conn, now) <= 1
        except StorageError as exc:
            logger.error("heartbeat failed: %s", exc)
        if self.periodic is not None and not unregister:
            try:
                self.periodic()
            except Exception:
                logger.exception("housekeeping failed")
