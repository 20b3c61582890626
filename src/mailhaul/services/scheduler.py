"""The poll loop of `mailhaul serve`: due accounts, a bounded pool, a clean stop."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.domain.errors import AccountBusy, MailhaulError, StorageError
from mailhaul.services.polling import Poller, RunSummary

logger = logging.getLogger(__name__)

IDLE_WAIT = 1.0


class Scheduler:
    """Polls every active account when it is due, ``workers`` at a time."""

    def __init__(
        self,
        db: Database,
        accounts: AccountStore,
        poller: Poller,
        workers: int,
        stop: threading.Event | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.poller = poller
        self.workers = workers
        self.stop = stop or threading.Event()

    def _poll(self, account_id: int) -> RunSummary | None:
        try:
            summary = self.poller.poll(account_id, trigger="schedule", stop=self.stop)
        except AccountBusy:
            return None
        except MailhaulError as exc:
            logger.warning("account %s: %s", account_id, exc)
            return None
        outcome = "ok" if summary.result == "ok" else f"error: {summary.error}"
        logger.info(
            "account %s: %s, %d fetched, %d deleted",
            account_id,
            outcome,
            summary.fetched,
            summary.deleted,
        )
        return summary

    def run(self, grace: float = 60.0) -> None:
        """Poll until ``stop`` is set; then let running polls finish (at most ``grace`` s)."""
        inflight: dict[int, Future[RunSummary | None]] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="poll")
        try:
            while not self.stop.is_set():
                for account_id, future in list(inflight.items()):
                    if future.done():
                        del inflight[account_id]
                free = self.workers - len(inflight)
                if free > 0:
                    try:
                        with self.db.begin() as conn:
                            due = self.accounts.due(conn, time.time(), free + len(inflight))
                    except StorageError as exc:  # e.g. PostgreSQL restarting: try again soon
                        logger.error("cannot read due accounts: %s", exc)
                        due = []
                    for account_id in due:
                        if account_id not in inflight and len(inflight) < self.workers:
                            inflight[account_id] = pool.submit(self._poll, account_id)
                self.stop.wait(IDLE_WAIT)
        finally:
            self.stop.set()
            if inflight:
                logger.info("stopping: waiting for %d running poll(s)", len(inflight))
                wait(inflight.values(), timeout=grace)
            pool.shutdown(wait=False, cancel_futures=True)
