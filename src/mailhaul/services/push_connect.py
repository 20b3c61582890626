"""Opening the push watcher's connections off its event loop: a fixed pool of
``CONNECTORS`` threads, at most ``rate`` a second (a token bucket, so a restart with
thousands of accounts is spread), each open bounded by a ``RunGuard`` that a stop cancels."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING

from mailhaul.domain.account import Account
from mailhaul.domain.deadlines import RunGuard, RunningGuards
from mailhaul.domain.errors import MailhaulError

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink

CONNECTORS = 4
Opener = Callable[[Account], "IdleLink | None"]
"""Opens an account's watching connection; None: no usable credentials now (an OAuth2
token only a poll can refresh)."""


@dataclass
class Opened:
    """What opening an account's connection gave: the link, or why there is none."""

    account_id: int
    generation: int
    link: IdleLink | None = None
    error: MailhaulError | None = None


class Connector:
    """Opens connections on its threads; ``done`` is called (from them) after each."""

    def __init__(self, open_link: Opener, done: Callable[[], None]) -> None:
        self._open_link = open_link
        self._done = done
        self._results: SimpleQueue[Opened] = SimpleQueue()
        self._pool = ThreadPoolExecutor(max_workers=CONNECTORS, thread_name_prefix="push-open")
        self._opening = RunningGuards()
        self._budget = 1.0
        self._budget_at = time.monotonic()

    def may_start(self, now: float, rate: float) -> bool:
        """Whether one more open may start now: ``rate`` a second, in bursts of at most one
        second's worth."""
        self._budget = min(max(rate, 1.0), self._budget + max(now - self._budget_at, 0) * rate)
        self._budget_at = max(now, self._budget_at)
        if self._budget < 1.0:
            return False
        self._budget -= 1.0
        return True

    def next_start(self, now: float, rate: float) -> float:
        """When ``may_start`` will next say yes."""
        budget = min(max(rate, 1.0), self._budget + max(now - self._budget_at, 0) * rate)
        return now if budget >= 1.0 else now + (1.0 - budget) / rate

    def start(self, account: Account, generation: int, limit: float) -> None:
        """Open ``account``'s connection, in at most ``limit`` seconds."""

        def job() -> Opened:
            try:
                with self._opening.track(RunGuard(total=limit)):
                    return Opened(account.id, generation, link=self._open_link(account))
            except MailhaulError as exc:
                return Opened(account.id, generation, error=exc)

        self._pool.submit(job).add_done_callback(self._finished)

    def _finished(self, future: Future[Opened]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._results.put(future.result())
            self._done()

    def results(self) -> list[Opened]:
        """The opens finished since the last call."""
        found = []
        while True:
            try:
                found.append(self._results.get_nowait())
            except Empty:
                return found

    def stop(self) -> None:
        """Cut the opens in progress, drop those waiting (the threads end soon after)."""
        self._opening.cancel_all("the service is stopping")
        self._pool.shutdown(wait=False, cancel_futures=True)
