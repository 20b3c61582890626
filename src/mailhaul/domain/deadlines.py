"""Bounds on one run's network I/O that no server can extend: a progress watchdog, a total
time limit and cancellation from another thread.

A ``RunGuard`` belongs to one run (a poll, a connection test). The connections the run opens
find it with ``current_guard()`` (the services set it with ``RunGuard.active()`` around the
run), feed it ``progress()`` when a command is answered or message data arrives, ask it
``problem()`` before they wait, and register a closer that ``cancel()`` calls from another
thread (``socket.shutdown`` wakes a blocked read). Pure stdlib: time and a lock, no I/O.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator

Closer = Callable[[], None]


class RunGuard:
    """The stall limit, total deadline and cancellation shared by one run's connections."""

    def __init__(
        self,
        stall_timeout: float | None = None,
        total: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_timeout = stall_timeout
        self.total = total
        self._clock = clock
        now = clock()
        self._ends_at = now + total if total is not None else None
        self._progress_at = now
        self._lock = threading.Lock()
        self._closers: dict[int, Closer] = {}
        self._next_id = 0
        self.cancelled: str | None = None

    def progress(self) -> None:
        """A command was answered or message data arrived: the stall clock starts again."""
        self._progress_at = self._clock()

    def problem(self, slack: float = 0.0) -> str | None:
        """Why the run must stop now (cancelled, stalled, out of time, or will be within
        ``slack`` seconds), or None."""
        if self.cancelled is not None:
            return self.cancelled
        now = self._clock() + slack
        if self._ends_at is not None and now >= self._ends_at:
            return f"gave up after {self.total:g} s, the time limit of the whole run"
        if self.stall_timeout is not None and now - self._progress_at >= self.stall_timeout:
            return (
                f"no progress for {self.stall_timeout:g} s (no command answered, no message"
                " data received); gave up"
            )
        return None

    def remaining(self) -> float | None:
        """Seconds until ``problem()`` would say the run is out of time (None: no limit)."""
        now = self._clock()
        left: list[float] = []
        if self._ends_at is not None:
            left.append(self._ends_at - now)
        if self.stall_timeout is not None:
            left.append(self._progress_at + self.stall_timeout - now)
        return max(min(left), 0.0) if left else None

    def register(self, closer: Closer) -> Closer:
        """Call ``closer`` when the run is cancelled (at once if it already is); returns the
        function that takes the registration back."""
        with self._lock:
            key = self._next_id
            self._next_id += 1
            if self.cancelled is None:
                self._closers[key] = closer
                closer = _nothing
        closer()

        def unregister() -> None:
            with self._lock:
                self._closers.pop(key, None)

        return unregister

    def cancel(self, reason: str) -> None:
        """Stop the run from any thread: every registered closer is called once."""
        with self._lock:
            if self.cancelled is None:
                self.cancelled = reason
            closers, self._closers = list(self._closers.values()), {}
        for closer in closers:
            with contextlib.suppress(Exception):
                closer()

    @contextlib.contextmanager
    def active(self) -> Iterator[RunGuard]:
        """Make this the guard ``current_guard()`` returns in this thread, for the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


class RunningGuards:
    """The guards of the runs in progress (of one poller), so a stop can cancel them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guards: set[RunGuard] = set()

    @contextlib.contextmanager
    def track(self, guard: RunGuard) -> Iterator[RunGuard]:
        """Count ``guard`` as running (and active in this thread) for the block."""
        with self._lock:
            self._guards.add(guard)
        try:
            with guard.active():
                yield guard
        finally:
            with self._lock:
                self._guards.discard(guard)

    def __len__(self) -> int:
        with self._lock:
            return len(self._guards)

    def cancel_all(self, reason: str) -> int:
        """Cancel every running run; how many there were."""
        with self._lock:
            guards = list(self._guards)
        for guard in guards:
            guard.cancel(reason)
        return len(guards)


def _nothing() -> None:
    """A closer that does nothing."""


_current: contextvars.ContextVar[RunGuard | None] = contextvars.ContextVar(
    "mailhaul_run_guard", default=None
)


def current_guard() -> RunGuard:
    """The guard of the run in progress in this thread; outside a run, an unlimited one."""
    guard = _current.get()
    return guard if guard is not None else RunGuard()
