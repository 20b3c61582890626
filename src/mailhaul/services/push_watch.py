"""One watched connection as the push watcher keeps it (an account has one per folder it
idles on, or one for all with NOTIFY), the waits between its connection attempts, and the
account's state made of its connections' (no I/O here: the watcher's loop drives these)."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from mailhaul.domain.account import Account
from mailhaul.domain.errors import AuthenticationFailed, MailhaulError, UnsupportedByServer
from mailhaul.services.push_plan import Target

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink

BASE_BACKOFF = 2.0
MAX_BACKOFF = 900.0
"""Reconnects wait from 2 s, doubling, up to 15 minutes (each with jitter)."""
UNSUPPORTED_RETRY = 6 * 3600.0
"""A server without IDLE is asked again after this long (it may have been upgraded)."""
NO_CREDENTIALS_RETRY = 30.0
"""An OAuth2 account without a usable token looks again after this long."""
COALESCE = 0.2
"""Seconds of changes gathered into one request for a poll (a burst asks once)."""


class WatchState(StrEnum):
    """What a watch is doing, as every view words it (``push_state_words``)."""

    CONNECTING = "connecting"
    WATCHING = "watching"
    RECONNECTING = "reconnecting"
    UNSUPPORTED = "unsupported"  # the server has no IDLE: the account is polled only
    WAITING = "waiting"  # a poll must sign in first (login refused, OAuth2 token stale)


def backoff(failures: int, rng: random.Random) -> float:
    """Seconds before the next attempt after ``failures`` failed ones in a row: doubling
    from BASE_BACKOFF up to MAX_BACKOFF, drawn between half and all of that, so that the
    watchers a server restart cut off do not all come back in the same second."""
    ceiling = min(MAX_BACKOFF, BASE_BACKOFF * 2.0 ** min(max(failures - 1, 0), 20))
    return rng.uniform(ceiling / 2, ceiling)


Key = tuple[int, str]
"""A watch's key: (account id, the folder its connection idles on)."""


@dataclass
class Watch:
    """One connection of an account's watch: the connection (None while there is none),
    its state and its timers (``monotonic`` seconds; ``since`` and ``login_failed_at`` are
    wall times)."""

    account: Account
    state: WatchState
    since: float
    target: Target = field(default_factory=lambda: Target("INBOX"))
    reason: str = ""
    link: IdleLink | None = None
    connecting: bool = False
    generation: int = 0  # this watch's own number (-1 once dropped): an open started for
    # another (an earlier watch of the account, before an edit) is recognised and closed
    failures: int = 0
    next_at: float = 0.0  # the next connection attempt, or the next keepalive
    deadline: float | None = None  # the keepalive round trip must be over by then
    request_at: float | None = None  # ask for a poll then (the changes since, coalesced)
    events: int = 0
    login_failed_at: float | None = None
    mark: tuple[int | None, int | None] | None = None  # (UIDVALIDITY, UIDNEXT) at the last
    # connection: another one finding others asks for a poll
    due: float = math.inf  # when the loop looks at it next (``push_timers``)
    queued: bool = False  # in the line of connections waiting for the connect rate

    def enter(self, state: WatchState, reason: str, now: float) -> None:
        """Change state (``since`` moves only when the state itself changes)."""
        if state is not self.state:
            self.since = now
        self.state, self.reason = state, reason

    def wake_at(self) -> float:
        """When the loop must next look at this watch: a poll to ask for, a connection
        to open (unless one is being opened or waits in line), a keepalive to start or
        one overdue."""
        if self.link is not None:
            when = self.deadline if self.deadline is not None else self.next_at
        elif self.connecting or self.queued:
            when = math.inf
        else:
            when = self.next_at
        return when if self.request_at is None else min(when, self.request_at)

    def heard_change(self, now: float) -> None:
        """New mail: a poll is asked for COALESCE seconds from the first change on."""
        if self.request_at is None:
            self.request_at = now + COALESCE

    def failed(
        self, error: MailhaulError | None, now: float, wall: float, rng: random.Random
    ) -> None:
        """Opening the connection failed (``error`` None: no usable OAuth2 token): wait
        for a poll, for an upgrade of the server, or a backoff, as the error says."""
        if error is None:
            self.enter(WatchState.WAITING, "a poll must refresh the OAuth2 access token", wall)
            self.next_at = now + NO_CREDENTIALS_RETRY
        elif isinstance(error, UnsupportedByServer):
            self.enter(WatchState.UNSUPPORTED, str(error), wall)
            self.next_at = now + UNSUPPORTED_RETRY
        elif isinstance(error, AuthenticationFailed):
            self.login_failed_at = wall
            self.enter(WatchState.WAITING, f"{error}; watching again after a poll signs in", wall)
            self.next_at = float("inf")
        else:
            self.failures += 1
            self.enter(WatchState.RECONNECTING, str(error), wall)
            self.next_at = now + backoff(self.failures, rng)

    @property
    def key(self) -> Key:
        """(account id, folder)."""
        return (self.account.id, self.target.folder)


Row = tuple[str, float, str, int, int]
"""An account's (state, since, reason, events, connections) as the database shows it."""


def account_row(watches: list[Watch], detail: str) -> Row:
    """The state of an account made of its connections' (the first one's, unless another
    is watching): watching says what (``detail``), the others why; events are summed;
    connections are its watches (open, opening or to reopen)."""
    events, connections = sum(watch.events for watch in watches), len(watches)
    first = watches[0]
    watching = [watch for watch in watches if watch.state is WatchState.WATCHING]
    if watching:
        since = min(watch.since for watch in watching)
        return (str(WatchState.WATCHING), since, detail, events, connections)
    return (str(first.state), first.since, first.reason, events, connections)


@dataclass
class PushCounters:
    """What the watcher did since it started (for /metrics)."""

    events: int = 0
    reconnects: int = 0
    requests: int = 0
    watched: int = 0


class HeardTimes:
    """When new mail was heard for each account and no poll has answered it yet (for the
    arrival-to-delivery latency); used from the watcher's and the polls' threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: dict[int, float] = {}

    def heard(self, account_id: int, now: float) -> None:
        """New mail was heard (the first time since the last answering poll counts)."""
        with self._lock:
            self._at.setdefault(account_id, now)

    def delivered(self, account_id: int, fetched: int, duration: float) -> float | None:
        """Seconds since the new mail a poll that just ended answered was heard, when the
        poll began after that and fetched something."""
        now = time.time()
        with self._lock:
            heard = self._at.get(account_id)
            if heard is None or now - duration < heard:
                return None
            del self._at[account_id]
        return now - heard if fetched > 0 else None
