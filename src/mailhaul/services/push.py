"""The push watcher of `serve`/`worker`: IMAP IDLE on the INBOX of every push account,
all on one thread (a selector), asking for polls; it never fetches or deletes.

One event loop holds every watched connection (``IdleLink``: non-blocking, small); opening
one (TLS, sign-in, EXAMINE, IDLE) blocks, so ``push_connect`` does it on a few threads, at
most ``push.connects_per_second`` a second (a restart with thousands of accounts is spread).

- New mail (``EXISTS`` above the count, ``RECENT``) asks for the account's poll as
  "Fetch now" does (trigger ``push``); changes within ``COALESCE`` seconds ask once, and a
  change during a poll leaves a request that gives one more poll after it.
- Every ``push.keepalive`` seconds (under RFC 2177's 29 minutes) a DONE/IDLE round trip
  proves the connection alive; one not over within ``poll.timeout`` counts as dead.
- A dropped connection (BYE, end of file, a dead keepalive) is opened again after a
  backoff with jitter; if the folder's UIDNEXT (or UIDVALIDITY) moved meanwhile, a poll is
  asked for once it is back.
- A refused login stops the watch until a poll signs in fine (no lockouts from
  reconnects); an OAuth2 account waits for a poll to refresh its token (the watcher holds
  no lease and never refreshes); a server without IDLE is polled only.
- Every ``SYNC_EVERY`` seconds the set of watched accounts follows the database (added,
  removed, switched off, paused, edited) and each watch is leased in ``push_watches`` (one
  process per account); changed states are written there within ``REPORT_EVERY`` s.
- On stop: ``DONE`` and ``LOGOUT`` on every connection (answers awaited ``LEAVE_WAIT`` s).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.domain.account import Account
from mailhaul.domain.errors import (
    AuthenticationFailed,
    MailhaulError,
    NotFound,
    StorageError,
    UnsupportedByServer,
)
from mailhaul.services.leases import dead_local_owner
from mailhaul.services.push_connect import Connector, Opened, Opener
from mailhaul.services.push_watch import UNSUPPORTED_RETRY, Watch, WatchState, backoff
from mailhaul.settings import Settings

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink

logger = logging.getLogger(__name__)

SYNC_EVERY = 5.0
REPORT_EVERY = 1.0
LEASE = 30.0
"""Seconds a watch lease lasts unless renewed (every SYNC_EVERY): another process takes
over the watches of one that died after this at most (at once when it was on this host)."""
LEAVE_WAIT = 5.0
NO_CREDENTIALS_RETRY = 30.0


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


@dataclass
class PushCounters:
    """What the watcher did since it started (for /metrics)."""

    events: int = 0
    reconnects: int = 0
    requests: int = 0
    watched: int = 0


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
        self.watches: dict[int, Watch] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._connector = Connector(deps.open_link, self.wake)
        self._rng = random.Random()
        self._thread: threading.Thread | None = None
        self._heard_lock = threading.Lock()
        self._heard_at: dict[int, float] = {}  # new mail heard, no poll since: when
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
        """From a poll's end (any thread): seconds since the new mail it answered was
        heard, when it began after that and fetched something (the latency histogram)."""
        now = time.time()
        with self._heard_lock:
            heard = self._heard_at.get(account_id)
            if heard is None or now - duration < heard:
                return None
            del self._heard_at[account_id]
        return now - heard if fetched > 0 else None

    def run(self) -> None:
        """The loop; on stop every connection is left politely and the rows released."""
        next_sync = next_report = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_sync:
                    self._sync()
                    next_sync = next_report = time.monotonic() + SYNC_EVERY
                elif now >= next_report:
                    self._report()
                    next_report = now + REPORT_EVERY
                self._collect()
                self._timers(time.monotonic())
                self._wait(min(next_sync, self._next_timer()) - time.monotonic())
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
        settings = self.deps.settings()
        now = time.time()
        try:
            with self.deps.db.begin() as conn:
                store = self.deps.store
                wanted = {a.id: a for a in store.candidates(conn, settings.push_enabled)}
                dead = [h for h in store.holders(conn, now) if dead_local_owner(h)]
                held = store.claim(conn, wanted, self.worker_id, now, LEASE, steal_from=dead)
        except StorageError as exc:
            logger.error("push: cannot read the accounts to watch: %s", exc)
            return
        for account_id in [i for i in self.watches if i not in held]:
            self._drop(account_id)
        for account_id in held:
            self._follow(wanted[account_id], now)
        self._report()

    def _follow(self, account: Account, now: float) -> None:
        watch = self.watches.get(account.id)
        if watch is None or watch.account.spec != account.spec:
            if watch is not None:
                self._drop(account.id, release=False)
            fresh = Watch(account, WatchState.CONNECTING, now, generation=next(self._generations))
            self.watches[account.id] = fresh
            return
        watch.account = account
        if watch.state is WatchState.WAITING and watch.login_failed_at is not None:
            signed_in = account.last_run_at or 0.0
            if account.last_result == "ok" and signed_in > watch.login_failed_at:
                watch.login_failed_at = None
                watch.enter(WatchState.CONNECTING, "", now)
                watch.next_at = 0.0

    def _report(self) -> None:
        self.counters.watched = sum(1 for w in self.watches.values() if w.link is not None)
        changed = [w for w in self.watches.values() if w.reported != w.row]
        if not changed:
            return
        rows = [
            WatchRow(w.account.id, self.worker_id, str(w.state), w.since, w.reason, w.events)
            for w in changed
        ]
        try:
            with self.deps.db.begin() as conn:
                self.deps.store.report(conn, self.worker_id, rows)
        except StorageError as exc:
            logger.error("push: cannot write the watch states: %s", exc)
            return
        for watch in changed:
            watch.reported = watch.row

    def _drop(self, account_id: int, release: bool = True) -> None:
        watch = self.watches.pop(account_id)
        watch.generation = -1  # a connection still being opened for it is closed on arrival
        if watch.link is not None:
            self._unregister(watch)
            with contextlib.suppress(MailhaulError):
                watch.link.leave()
            watch.link.close()
            watch.link = None
        if release:
            with contextlib.suppress(StorageError), self.deps.db.begin() as conn:
                self.deps.store.release(conn, self.worker_id, [account_id])

    # connecting -------------------------------------------------------------------------
    def _collect(self) -> None:
        """Take the connections the connecting threads opened (or why they could not)."""
        for done in self._connector.results():
            watch = self.watches.get(done.account_id)
            if watch is None or watch.generation != done.generation or self.stop.is_set():
                if done.link is not None:
                    with contextlib.suppress(MailhaulError):
                        done.link.leave()
                    done.link.close()
                continue
            watch.connecting = False
            self._opened(watch, done)

    def _opened(self, watch: Watch, done: Opened) -> None:
        now, wall = time.monotonic(), time.time()
        if done.link is not None:
            link = watch.link = done.link
            self._selector.register(link, selectors.EVENT_READ, watch.account.id)
            if watch.mark is not None and (link.mark != watch.mark or None in link.mark):
                watch.heard_change(now)  # mail may have come while the connection was down
            watch.mark = link.mark
            watch.failures = 0
            watch.enter(WatchState.WATCHING, "", wall)
            watch.next_at = now + self.deps.settings().push_keepalive
            self._read(watch)  # what came with the hand-over
            return
        error = done.error
        if error is None:
            watch.enter(WatchState.WAITING, "a poll must refresh the OAuth2 access token", wall)
            watch.next_at = now + NO_CREDENTIALS_RETRY
        elif isinstance(error, UnsupportedByServer):
            watch.enter(WatchState.UNSUPPORTED, str(error), wall)
            watch.next_at = now + UNSUPPORTED_RETRY
        elif isinstance(error, AuthenticationFailed):
            watch.login_failed_at = wall
            watch.enter(WatchState.WAITING, f"{error}; watching again after a poll signs in", wall)
            watch.next_at = float("inf")
        else:
            watch.failures += 1
            watch.enter(WatchState.RECONNECTING, str(error), wall)
            watch.next_at = now + backoff(watch.failures, self._rng)

    def _lost(self, watch: Watch, why: str) -> None:
        """The connection ended: open it again after a backoff."""
        if watch.link is not None:
            self._unregister(watch)
            watch.link.close()
            watch.link = None
        self.counters.reconnects += 1
        watch.deadline = None
        watch.failures += 1
        watch.enter(WatchState.RECONNECTING, why, time.time())
        watch.next_at = time.monotonic() + backoff(watch.failures, self._rng)
        logger.info("push: account %d: %s; reconnecting", watch.account.id, why)

    def _unregister(self, watch: Watch) -> None:
        if watch.link is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(watch.link)

    # events and timers ------------------------------------------------------------------
    def _read(self, watch: Watch) -> None:
        link = watch.link
        assert link is not None
        try:
            heard = link.read()
        except MailhaulError as exc:
            self._lost(watch, str(exc))
            return
        watch.events += heard.changes
        self.counters.events += heard.changes
        if heard.new_mail:
            watch.heard_change(time.monotonic())
            with self._heard_lock:
                self._heard_at.setdefault(watch.account.id, time.time())
        if heard.idling:
            watch.deadline = None
            watch.next_at = time.monotonic() + self.deps.settings().push_keepalive
        if heard.closed is not None:
            self._lost(watch, heard.closed)

    def _timers(self, now: float) -> None:
        for watch in list(self.watches.values()):
            if watch.request_at is not None and now >= watch.request_at:
                watch.request_at = None
                self._request(watch)
            if watch.account.id not in self.watches:
                continue
            if watch.link is None:
                rate = self.deps.settings().push_connects_per_second
                if (
                    not watch.connecting
                    and now >= watch.next_at
                    and self._connector.may_start(now, rate)
                ):
                    watch.connecting = True
                    limit = 2 * self.deps.settings().timeout
                    self._connector.start(watch.account, watch.generation, limit)
            elif watch.deadline is not None and now >= watch.deadline:
                timeout = self.deps.settings().timeout
                self._lost(watch, f"no answer to the keepalive within {timeout:g} s")
            elif watch.deadline is None and now >= watch.next_at:
                try:
                    watch.link.end_idle()
                except MailhaulError as exc:
                    self._lost(watch, str(exc))
                    continue
                watch.deadline = now + self.deps.settings().timeout

    def _next_timer(self) -> float:
        """When the loop has something to do next (at most a second away); connections
        waiting for the rate limit wait for it, rather than spin the loop."""
        now = time.monotonic()
        opening = self._connector.next_start(now, self.deps.settings().push_connects_per_second)
        times = [now + 1.0]
        for watch in self.watches.values():
            if watch.request_at is not None:
                times.append(watch.request_at)
            if watch.deadline is not None:
                times.append(watch.deadline)
            elif watch.link is None and not watch.connecting:
                times.append(max(watch.next_at, opening))
            elif watch.link is not None:
                times.append(watch.next_at)
        return min(times)

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
