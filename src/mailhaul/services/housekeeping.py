"""What a running service does beside polling: it applies settings an admin changed in the
database (at every scheduler heartbeat, about every 5 s) and prunes run history past its
retention (about once an hour). Notices go out from a thread of their own
(``notices.NoticeLoop``)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from mailhaul.domain.errors import MailhaulError

if TYPE_CHECKING:
    from mailhaul.adapters.db.database import Database
    from mailhaul.adapters.db.runs import RunStore
    from mailhaul.services.polling import Poller
    from mailhaul.services.scheduler import Scheduler
    from mailhaul.settings import Settings

logger = logging.getLogger(__name__)

DAY = 86400.0
PRUNE_EVERY = 3600.0
"""Seconds between two prunings of run history by a running service."""


class ServiceHome(Protocol):
    """What housekeeping needs of the application (``bootstrap.App`` fits)."""

    @property
    def db(self) -> Database: ...
    @property
    def run_store(self) -> RunStore: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def poller(self) -> Poller: ...
    def refresh_settings(self) -> bool: ...


def prune_runs(db: Database, runs: RunStore, keep_days: int, now: float | None = None) -> int:
    """Delete runs older than ``keep_days`` (0 or less keeps everything); how many went.

    Each account's newest finished run stays, whatever its age.
    """
    if keep_days <= 0:
        return 0
    now = time.time() if now is None else now
    with db.begin() as conn:
        pruned = runs.prune(conn, now - keep_days * DAY)
    if pruned:
        logger.info("pruned %d run(s) older than %d day(s)", pruned, keep_days)
    return pruned


class Housekeeping:
    """The scheduler's ``periodic`` callback of a running service (see the module doc)."""

    def __init__(self, home: ServiceHome, scheduler: Scheduler | None = None) -> None:
        self.home = home
        self.scheduler = scheduler
        self.next_prune_at = 0.0
        self.refresh_error = ""

    def __call__(self) -> None:
        self.refresh_settings()
        now = time.monotonic()
        if now < self.next_prune_at:
            return
        self.next_prune_at = now + PRUNE_EVERY
        prune_runs(self.home.db, self.home.run_store, self.home.settings.runs_keep_days)

    def refresh_settings(self) -> None:
        """Apply changed settings: the scheduler takes the (maybe new) poller between polls;
        a poll in progress finishes with the poller and sink it started with. Settings that
        do not fit are logged once and the ones in force are kept."""
        try:
            self.home.refresh_settings()
        except MailhaulError as exc:
            if str(exc) != self.refresh_error:
                logger.error("settings not applied: %s", exc)
            self.refresh_error = str(exc)
            return
        self.refresh_error = ""
        if self.scheduler is not None:
            self.scheduler.poller = self.home.poller
            self.scheduler.per_host_limit = self.home.settings.per_host_limit
            self.scheduler.connection_cap = self.home.settings.limits.connections_for
