"""A poll run and what it stands on: the dependencies runs share, and one run's own state.

``PollDeps`` is frozen: a run takes the ``PollDeps`` in force when it starts and keeps them
to its end, so a settings change (a new sink, another schedule policy) reaches the next
run, never one halfway through. ``PollRun`` is what one run of one account carries from
folder to folder: the account, the connected source, the delivery session, the run log, the
counts, the lease it holds, the stop request and the progress callback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.folders import FolderRecords
from mailhaul.adapters.db.quarantine import QuarantineRows
from mailhaul.adapters.db.records import MessageRecords
from mailhaul.adapters.db.runs import RunStore
from mailhaul.domain.account import Account
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.limits import HostLimits
from mailhaul.domain.options import Credentials, RetrievalOptions, SourceEndpoint
from mailhaul.domain.planning import RunBudget
from mailhaul.domain.ports import DeliverySession, LogFn, MailSink, MailSource
from mailhaul.domain.scheduling import SchedulePolicy
from mailhaul.services.filtering import FilterStage, Scanners
from mailhaul.services.incidents import IncidentTracker
from mailhaul.services.leases import Leases
from mailhaul.services.runlog import RunLog
from mailhaul.services.sign_in import SignIn

SourceFactory = Callable[[SourceEndpoint, Credentials, LogFn], MailSource]

ProgressFn = Callable[[int, int, int, int], None]
"""Called with (account id, messages done, messages planned, bytes done)."""

PROGRESS_EVERY = 1.0
"""Seconds between writes of a running run's counts to its row (what other processes see)."""


@dataclass(frozen=True)
class PollDeps:
    """What polls need from the outside world (one set per delivery configuration)."""

    db: Database
    accounts: AccountStore
    records: MessageRecords
    runs: RunStore
    sign_in: SignIn
    sink: MailSink
    open_source: SourceFactory
    timeout: float
    leases: Leases
    policy: SchedulePolicy = field(default_factory=SchedulePolicy)
    folders: FolderRecords = field(default_factory=FolderRecords)
    stall_timeout: float | None = None
    """A run without progress for this long ends (None: no limit); see ``RunGuard``."""
    filters: Scanners | None = None
    """The scanners of the filter stage (None: none set up, as in some tests)."""
    quarantine_rows: QuarantineRows = field(default_factory=QuarantineRows)
    incidents: IncidentTracker | None = None
    """Opens and closes incidents with each run's record (None: not tracked, as in tests)."""
    clock: Callable[[], float] = time.time
    limits: HostLimits = field(default_factory=HostLimits)
    """Provider limits by source host (the daily download budget of each account)."""
    """What time it is when deliveries are recorded and kept mail's days are counted
    (``delete_after_days``): tests move it rather than sleep."""


@dataclass
class RunCounts:
    """What a run has done so far."""

    fetched: int = 0
    bytes: int = 0
    deleted: int = 0
    skipped: int = 0
    planned: int = 0
    spam: int = 0
    viruses: int = 0
    unscanned: int = 0
    cert_expires: float | None = None  # when the server's verified certificate expires
    limited: bool = False  # stopped at a per-run limit: the account is due again at once

    @property
    def filtered(self) -> tuple[int, int, int]:
        """What the filter stage found: (spam, viruses, unscanned)."""
        return self.spam, self.viruses, self.unscanned


@dataclass
class PollRun:
    """One run of one account, carried from folder to folder."""

    deps: PollDeps
    account: Account
    source: MailSource
    delivery: DeliverySession
    log: RunLog
    lease_owner: str
    stop: threading.Event = field(default_factory=threading.Event)
    progress: ProgressFn | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    renew_at: float = 0.0
    run_id: int | None = None
    """The run's row, where its counts so far are shown (None: not shown, as in tests)."""
    shown_at: float = 0.0
    budget: RunBudget = field(default_factory=RunBudget)
    """What the run may still fetch under the account's per-run limits."""
    move_target_ready: bool = False  # the move_to folder is known to exist on the source

    @property
    def destination(self) -> str:
        """The address this account's mail is delivered to."""
        return self.account.spec.destination

    @property
    def options(self) -> RetrievalOptions:
        """The account's retrieval options."""
        return self.account.spec.options

    def filter_stage(self) -> FilterStage | None:
        """The account's checks before delivery; None when it asks for none."""
        options = self.account.spec.filters
        if not options.active:
            return None
        if self.deps.filters is None:
            raise ConfigError("this account asks for spam or virus checks; none are set up")
        return FilterStage(self.deps.filters, options)

    def renew_lease(self) -> None:
        """Extend the lease (per batch, and during a long message); AccountBusy if lost."""
        leases = self.deps.leases
        leases.renew(self.account.id, self.lease_owner)
        self.renew_at = time.monotonic() + leases.ttl / 3

    def renew_lease_if_due(self) -> None:
        """``renew_lease()`` once a third of the lease has passed since the last renewal."""
        if time.monotonic() > self.renew_at:
            self.renew_lease()

    def delivered(self, size: int) -> None:
        """Count one delivered message and tell whoever watches the progress."""
        counts = self.counts
        counts.fetched += 1
        counts.bytes += size
        if self.progress is not None:
            self.progress(self.account.id, counts.fetched, counts.planned, counts.bytes)
        now = time.monotonic()
        if self.run_id is not None and now - self.shown_at >= PROGRESS_EVERY:
            # Throttled: one small write a second at most, whatever the message rate.
            self.shown_at = now
            with self.deps.db.begin() as conn:
                self.deps.runs.progress(conn, self.run_id, counts.fetched, counts.bytes)
