"""One watched account as the push watcher keeps it, and the waits between its connection
attempts (no I/O here: the watcher's loop drives these records)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from mailhaul.domain.account import Account

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink

BASE_BACKOFF = 2.0
MAX_BACKOFF = 900.0
"""Reconnects wait from 2 s, doubling, up to 15 minutes (each with jitter)."""
UNSUPPORTED_RETRY = 6 * 3600.0
"""A server without IDLE is asked again after this long (it may have been upgraded)."""
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


@dataclass
class Watch:
    """One account's watch: its connection (None while there is none), its state and its
    timers (``monotonic`` seconds; ``since`` and ``login_failed_at`` are wall times)."""

    account: Account
    state: WatchState
    since: float
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
    reported: tuple[str, float, str, int] | None = None  # what the database shows

    def enter(self, state: WatchState, reason: str, now: float) -> None:
        """Change state (``since`` moves only when the state itself changes)."""
        if state is not self.state:
            self.since = now
        self.state, self.reason = state, reason

    def heard_change(self, now: float) -> None:
        """New mail: a poll is asked for COALESCE seconds from the first change on."""
        if self.request_at is None:
            self.request_at = now + COALESCE

    @property
    def row(self) -> tuple[str, float, str, int]:
        """What the database should show."""
        return (str(self.state), self.since, self.reason, self.events)
