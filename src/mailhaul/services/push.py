"""The push watcher of `serve`/`worker`: IMAP IDLE (and NOTIFY) on the folders of every
push account, all on one thread (a selector), asking for polls; it never fetches or deletes.

An account gets ``push_plan``'s connections (one NOTIFY connection for all its folders, or
one IDLE per ``push_folders`` entry within its connection cap), each a ``Watch`` keyed
(account, folder). Opening one blocks (TLS, sign-in, EXAMINE, IDLE), so ``push_connect``
does it on a few threads, at most ``push.connects_per_second`` a second.

- New mail (``EXISTS`` above the count, ``RECENT``, a NOTIFY ``STATUS``) asks for the
  account's poll as "Fetch now" does (trigger ``push``), once per ``COALESCE`` seconds.
- Every ``push.keepalive`` seconds a DONE/IDLE round trip proves the connection alive. A
  dropped one (BYE, end of file, a dead keepalive) is opened again after a backoff with
  jitter, and a poll asked for if its folder's UIDNEXT moved meanwhile (or it had NOTIFY).
  Failed opens wait as ``Watch.failed`` says (no lockouts). A turn of the loop looks only
  at the watches whose time came (``push_timers``).
- Every ``SYNC_EVERY`` s the watched accounts follow the database, each leased in
  ``push_watches`` (``push_sync``); changed states are written within ``REPORT_EVERY`` s.
On stop: ``DONE`` and ``LOGOUT`` on every connection (answers awaited ``LEAVE_WAIT`` s).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import random
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

from mailhaul.domain.account import Account
from mailhaul.domain.errors import MailhaulError, NotFound, StorageError
from mailhaul.services.push_book import Mailbox, WatchBook
from mailhaul.services.push_connect import Connector, Opened
from mailhaul.services.push_plan import Planner, WatchPlan, mailbox_of, taken_elsewhere
from mailhaul.services.push_sync import FULL_SYNC_EVERY, PushDeps, RowReporter, claim_share
from mailhaul.services.push_timers import Timers
from mailhaul.services.push_watch import (
    HeardTimes,
    Key,
    PushCounters,
    Watch,
    WatchState,
    backoff,
)

logger = logging.getLogger(__name__)

SYNC_EVERY = 5.0
REPORT_EVERY = 1.0
LEAVE_WAIT = 5.0


class PushWatcher:
    """The watcher thread (see the module doc); ``on_request`` is told of each request."""

    def __init__(
        self,
        deps: PushDeps,
        stop: threading.Event,
        worker_id: str,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        self.deps = deps
        self.stop = stop
        self.worker_id = worker_id
        self.on_request = on_request
        self.counters = PushCounters()
        self.sync_every = SYNC_EVERY
        self._book = WatchBook()
        self.watches: dict[Key, Watch] = self._book.watches  # (account id, folder)
        self._plans: dict[int, WatchPlan] = {}  # of the accounts held
        self._followed: dict[int, tuple[object, ...]] = {}  # what each plan was made of
        self._next_full = 0.0  # when the sync next reads every account row whole
        self._planner = Planner()
        self._has_notify: dict[int, bool] = {}  # what each account's server showed
        self._elsewhere: dict[int, int] = {}  # connections other processes plan (taken)
        self._rows = RowReporter(deps, worker_id)  # the accounts' rows in push_watches
        self._agenda = Timers()  # when each watch needs the loop next
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._connector = Connector(deps.open_link, self.wake)
        self._rng = random.Random()
        self._thread: threading.Thread | None = None
        self._heard = HeardTimes()
        self._generations = itertools.count(1)  # each Watch its own: stale opens are told

    # life -------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the loop on its own thread until ``stop`` is set."""
        self._thread = threading.Thread(target=self.run, name="push", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """From any thread: make the loop look round at once (a stop, a connection)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def join(self, timeout: float) -> None:
        """Wait for the loop to end (after ``stop`` was set)."""
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def delivered(self, account_id: int, fetched: int, duration: float) -> float | None:
        """From a poll's end (any thread): see ``HeardTimes.delivered``."""
        return self._heard.delivered(account_id, fetched, duration)

    def connections_to(self, mailbox: Mailbox) -> int:
        """From any thread: this watcher's connections to a remote mailbox."""
        return self._book.connections_to(mailbox)

    def run(self) -> None:
        """The loop; on stop every connection is left politely and the rows released."""
        next_sync = next_report = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_sync:
                    self._sync()  # (which reports too)
                    next_sync = time.monotonic() + self.sync_every
                    next_report = time.monotonic() + REPORT_EVERY
                elif now >= next_report:
                    self._report()
                    next_report = now + REPORT_EVERY
                self._collect()
                soonest = self._timers(time.monotonic())
                self._wait(min(next_sync, soonest) - time.monotonic())
        except Exception:
            logger.exception("push watcher failed; polling goes on")
        finally:
            self._connector.stop()
            self._leave_all()
            with contextlib.suppress(StorageError), self.deps.db.begin() as conn:
                self.deps.store.release(conn, self.worker_id)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _wait(self, timeout: float) -> None:
        for key, _ in self._selector.select(max(0.0, min(timeout, 1.0))):
            if key.data is None:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
                continue
            watch = self.watches.get(key.data)
            if watch is not None and watch.link is not None:
                self._read(watch)

    # the database -----------------------------------------------------------------------
    def _sync(self) -> None:
        """Follow the database: which accounts to watch (leased here), their rows."""
        now, full = time.time(), time.monotonic() >= self._next_full
        try:
            with self.deps.db.begin() as conn:
                got = claim_share(conn, self.deps, self.worker_id, now, full)
            if full:
                self._next_full = time.monotonic() + FULL_SYNC_EVERY
        except StorageError as exc:
            logger.error("push: cannot read the accounts to watch: %s", exc)
            return
        dropped = self._book.accounts() - set(got.held)
        for account_id in dropped:
            self._drop(account_id)  # gone, switched off, taken over, or over the share
        self._rows.release([i for i in got.over if i not in dropped])  # never watched here
        held = [got.wanted[i] for i in got.held]
        self._elsewhere = taken_elsewhere(held, got.elsewhere, got.wanted)
        before: Counter[Mailbox] = Counter()  # a mailbox's cap goes by account id
        for account in held:
            mailbox = mailbox_of(account)
            self._follow(account, now, before[mailbox] + self._elsewhere.get(account.id, 0))
            before[mailbox] += len(self._plans[account.id].targets)
        self._report()

    def _follow(self, account: Account, now: float, taken: int | None = None) -> None:
        """The account's connections as its plan wants them (an edit starts them over);
        ``taken``: its mailbox's connections left to other accounts (None: what they hold)."""
        mine = self._book.of(account.id)
        if taken is None:
            taken = self._book.connections_to(mailbox_of(account)) - len(mine)
            taken += self._elsewhere.get(account.id, 0)  # other processes' of lower id
        known, limits = self._has_notify.get(account.id), self.deps.settings().limits
        if self._followed.get(account.id) == (account, taken, limits, known):
            return  # as at the last sync (nearly every account, every sync)
        if any(watch.account.spec != account.spec for watch in mine):
            self._drop(account.id, release=False)  # what its server showed is forgotten too
            mine, known = [], None
        self._followed[account.id] = (account, taken, limits, known)
        plan = self._planner.plan(account, limits, known, taken)
        if self._plans.get(account.id) is not plan:
            self._plans[account.id] = plan
            self._rows.touch(account.id)
        planned = {(account.id, target.folder): target for target in plan.targets}
        for watch in mine:
            if watch.key not in planned:
                self._close(watch)
        for key, target in planned.items():
            found = self.watches.get(key)
            if found is None:
                generation = next(self._generations)
                fresh = Watch(account, WatchState.CONNECTING, now, target, generation=generation)
                self._book.add(fresh)
                self._rows.touch(account.id)
                self._agenda.arm(fresh)
                continue
            watch = found
            watch.account, watch.target = account, target
            if watch.state is WatchState.WAITING and watch.login_failed_at is not None:
                signed_in = account.last_run_at or 0.0
                if account.last_result == "ok" and signed_in > watch.login_failed_at:
                    watch.login_failed_at = None
                    watch.enter(WatchState.CONNECTING, "", now)
                    watch.next_at = 0.0
                    self._rows.touch(account.id)
                    self._agenda.arm(watch)

    def _report(self) -> None:
        self.counters.watched = sum(1 for w in self.watches.values() if w.link is not None)
        self._rows.write(self._plans, self._book.of)

    def _drop(self, account_id: int, release: bool = True) -> None:
        """Stop watching the account: every connection left politely, its row released."""
        for watch in self._book.of(account_id):
            self._close(watch)
        self._plans.pop(account_id, None)
        self._followed.pop(account_id, None)
        self._planner.forget(account_id)
        self._rows.forget(account_id)
        self._has_notify.pop(account_id, None)
        if release:  # after its connections closed: never two watchers at once
            self._rows.release([account_id])

    def _close(self, watch: Watch) -> None:
        """Forget one connection (DONE/LOGOUT if it is open)."""
        self._book.remove(watch)
        self._rows.touch(watch.account.id)
        watch.generation = -1  # a connection still being opened for it is closed on arrival
        self._detach(watch, leave=True)

    # connecting -------------------------------------------------------------------------
    def _collect(self) -> None:
        """Take the connections the connecting threads opened (or why they could not)."""
        for done in self._connector.results():
            watch = self.watches.get(done.key)
            if watch is None or watch.generation != done.generation or self.stop.is_set():
                done.discard()
                continue
            watch.connecting = False
            self._opened(watch, done)

    def _opened(self, watch: Watch, done: Opened) -> None:
        self._rows.touch(watch.account.id)
        now, wall = time.monotonic(), time.time()
        if done.link is not None:
            link = watch.link = done.link
            self._selector.register(link, selectors.EVENT_READ, watch.key)
            moved = link.mark != watch.mark or None in link.mark or link.notify is not None
            if watch.mark is not None and moved:  # NOTIFY: the other folders are unknown
                watch.heard_change(now)  # mail may have come while the connection was down
            watch.mark = link.mark
            watch.failures = 0
            watch.enter(WatchState.WATCHING, "", wall)
            watch.next_at = now + self.deps.settings().push_keepalive
            self._read(watch)  # what came with the hand-over (and armed)
            if watch.target.notify is not None:  # the plan follows what the server has
                account, known = watch.account, self._has_notify.get(watch.account.id)
                self._has_notify[account.id] = link.notify is not None
                if known is None and link.notify is None and account.id in self._plans:
                    self._follow(account, wall)  # no NOTIFY: the IDLE list instead
            return
        watch.failed(done.error, now, wall, self._rng)
        self._agenda.arm(watch)

    def _lost(self, watch: Watch, why: str) -> None:
        """The connection ended: open it again after a backoff."""
        self._detach(watch, leave=False)
        self.counters.reconnects += 1
        watch.deadline = None
        watch.failures += 1
        watch.enter(WatchState.RECONNECTING, why, time.time())
        watch.next_at = time.monotonic() + backoff(watch.failures, self._rng)
        self._rows.touch(watch.account.id)
        self._agenda.arm(watch)
        logger.info("push: account %d: %s; reconnecting", watch.account.id, why)

    def _unregister(self, watch: Watch) -> None:
        if watch.link is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(watch.link)

    def _detach(self, watch: Watch, leave: bool) -> None:
        """Close the watch's connection (after DONE/LOGOUT when ``leave``), if it has one."""
        if watch.link is not None:
            self._unregister(watch)
            if leave:
                with contextlib.suppress(MailhaulError):
                    watch.link.leave()
            watch.link.close()
            watch.link = None

    # events and timers ------------------------------------------------------------------
    def _read(self, watch: Watch) -> None:
        link = watch.link
        assert link is not None
        try:
            heard = link.read()
        except MailhaulError as exc:
            self._lost(watch, str(exc))
            return
        if heard.changes:
            watch.events += heard.changes
            self.counters.events += heard.changes
            self._rows.touch(watch.account.id)
        if heard.new_mail:
            watch.heard_change(time.monotonic())
            self._heard.heard(watch.account.id, time.time())
        if heard.idling:
            watch.deadline = None
            watch.next_at = time.monotonic() + self.deps.settings().push_keepalive
        if heard.closed is not None:
            self._lost(watch, heard.closed)
        else:
            self._agenda.arm(watch)

    def _timers(self, now: float) -> float:
        """Do what is due for the watches whose time came (``push_timers``) and open those
        in line as the connect rate allows; when the loop has something to do next."""
        for watch in self._agenda.due(now):
            if self.watches.get(watch.key) is watch:
                self._on_time(watch, now)
        rate = self.deps.settings().push_connects_per_second
        while self._agenda.waiting() and self._connector.may_start(now, rate):
            turn = self._agenda.next_in_line()
            if turn is None or self.watches.get(turn.key) is not turn:
                continue
            if turn.link is not None or turn.connecting or now < turn.next_at:
                self._agenda.arm(turn)  # moved on since it queued
                continue
            turn.connecting = True
            limit = 2 * self.deps.settings().timeout
            self._connector.start(turn.account, turn.target, turn.generation, limit)
        later = self._connector.next_start(now, rate) if self._agenda.waiting() else math.inf
        return min(self._agenda.soonest(), later)

    def _on_time(self, watch: Watch, now: float) -> None:
        """One watch whose time came: its request, its turn to connect, its keepalive."""
        if watch.request_at is not None and now >= watch.request_at:
            for sibling in self._book.of(watch.account.id):  # one request per account
                sibling.request_at = None
            self._request(watch)
            if self.watches.get(watch.key) is not watch:
                return
        if watch.link is None:
            if not watch.connecting and now >= watch.next_at:
                self._agenda.queue(watch)
        elif watch.deadline is not None and now >= watch.deadline:
            timeout = self.deps.settings().timeout
            self._lost(watch, f"no answer to the keepalive within {timeout:g} s")
            return
        elif watch.deadline is None and now >= watch.next_at:
            try:
                watch.link.end_idle()
            except MailhaulError as exc:
                self._lost(watch, str(exc))
                return
            watch.deadline = now + self.deps.settings().timeout
        self._agenda.arm(watch)

    def _request(self, watch: Watch) -> None:
        try:
            self.deps.request(watch.account.id)
        except NotFound:
            return  # deleted: the next sync drops the watch
        except MailhaulError as exc:
            logger.error("push: account %d: cannot ask for a poll: %s", watch.account.id, exc)
            watch.heard_change(time.monotonic() + 1.0)
            return
        self.counters.requests += 1
        if self.on_request is not None:
            self.on_request()

    # stopping ---------------------------------------------------------------------------
    def _leave_all(self) -> None:
        """DONE and LOGOUT on every connection; their answers for at most LEAVE_WAIT s."""
        links = []
        for watch in self.watches.values():
            watch.generation = -1
            if watch.link is not None:
                self._unregister(watch)
                links.append(watch.link)
                watch.link = None
        grace = self.deps.settings().stop_grace
        self.deps.leave_all(links, min(LEAVE_WAIT, grace) if grace > 0 else 0.0)
