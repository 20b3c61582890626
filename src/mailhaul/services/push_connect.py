"""Opening the push watcher's connections off its event loop: a fixed pool of
``CONNECTORS`` threads, at most ``rate`` a second (a token bucket, so a restart with
thousands of accounts is spread), each open bounded by a ``RunGuard`` that a stop cancels."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING

from mailhaul.domain.account import Account
from mailhaul.domain.deadlines import RunGuard, RunningGuards
from mailhaul.domain.errors import MailhaulError, TransientSourceError
from mailhaul.services.push_plan import Target

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.idle_link import IdleLink

logger = logging.getLogger(__name__)

CONNECTORS = 4
Opener = Callable[[Account, Target], "IdleLink | None"]
"""Opens an account's watching connection on a target folder; None: no usable credentials
now (an OAuth2 token only a poll can refresh)."""


@dataclass
class Opened:
    """What opening an account's connection gave: the link, or why there is none."""

    key: tuple[int, str]  # (account id, folder)
    generation: int
    link: IdleLink | None = None
    error: MailhaulError | None = None

    def discard(self) -> None:
        """Not wanted after all (the watch went, or the watcher stops): leave, close."""
        if self.link is not None:
            with contextlib.suppress(MailhaulError):
                self.link.leave()
            self.link.close()


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

    def start(self, account: Account, target: Target, generation: int, limit: float) -> None:
        """Open ``account``'s connection on ``target``, in at most ``limit`` seconds."""
        key = (account.id, target.folder)

        def job() -> Opened:
            try:
                with self._opening.track(RunGuard(total=limit)):
                    return Opened(key, generation, link=self._open_link(account, target))
            except MailhaulError as exc:
                return Opened(key, generation, error=exc)
            except Exception as exc:  # a bug: the watch tries again later, never waits for ever
                logger.exception("account %s: opening a push connection failed", account.id)
                failure = TransientSourceError(f"internal error: {type(exc).__name__}: {exc}")
                return Opened(key, generation, error=failure)

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
