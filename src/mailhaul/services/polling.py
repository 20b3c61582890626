"""Polling one account: lease → run record → connect → each folder → finish.

The per-folder work (and the never-lose ordering) is in ``folder_poll``. A crash leaves
pending records: the next run first asks the sink whether each receipt arrived and
settles it, so the message is neither lost nor delivered twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.folders import FolderRecords
from mailhaul.adapters.db.records import MessageRecords, PendingRecord
from mailhaul.adapters.db.runs import RunStore
from mailhaul.adapters.secrets import SecretBox
from mailhaul.domain.account import Account
from mailhaul.domain.deadlines import RunGuard, RunningGuards
from mailhaul.domain.errors import (
    AccountBusy,
    AuthenticationFailed,
    DestinationMissing,
    MailhaulError,
    error_kind,
)
from mailhaul.domain.options import Credentials, Security, SourceEndpoint
from mailhaul.domain.ports import LogFn, MailSink, MailSource
from mailhaul.domain.scheduling import Outcome, SchedulePolicy, after_run
from mailhaul.services.folder_poll import FolderPoll, ProgressFn, RunCounts
from mailhaul.services.leases import Leases, new_owner
from mailhaul.services.runlog import RunLog

logger = logging.getLogger(__name__)

SourceFactory = Callable[[SourceEndpoint, Credentials, LogFn], MailSource]

LATE_AFTER = 10.0
"""A run that starts more than this (or the policy's jitter window, if shorter) after its
account was due is *late*: the service is catching up on a backlog."""
LATE_JITTER = 0.5
"""After a late run the next poll is spread over ±50% of the wait (not ±10%). Accounts that
came due together (10,000 added at once, or a service that was down) and were polled in a
burst of up to one interval then come due no denser than an even spread over the interval,
instead of staying bunched for hours; the mean wait is unchanged."""


@dataclass
class RunSummary:
    """What one poll did."""

    account_id: int
    run_id: int | None
    result: str  # ok | error | busy
    fetched: int = 0
    bytes: int = 0
    deleted: int = 0
    skipped: int = 0
    error: str | None = None
    duration: float = 0.0
    error_kind: str | None = None  # auth, tls, network, … (services.metrics.error_kind)


class Poller:
    """Runs polls of accounts; safe to use from several threads at once."""

    def __init__(
        self,
        db: Database,
        accounts: AccountStore,
        records: MessageRecords,
        runs: RunStore,
        secret_box: SecretBox,
        sink: MailSink,
        source_factory: SourceFactory,
        timeout: float,
        leases: Leases | None = None,
        policy: SchedulePolicy | None = None,
        folders: FolderRecords | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.records = records
        self.folders = folders or FolderRecords()
        self.runs = runs
        self.secret_box = secret_box
        self.sink = sink
        self.source_factory = source_factory
        self.timeout = timeout
        self.leases = leases or Leases(db, accounts)
        self.policy = policy or SchedulePolicy()
        self.stall_timeout = stall_timeout
        """A run without progress for this long ends (None: no limit); see RunGuard."""
        self.running = RunningGuards()
        """The guards of the polls in progress (shared by copies), so a stop can cut them."""
        self._random = random.Random()

    # the run as a whole ------------------------------------------------------------------
    def poll(
        self,
        account_id: int,
        trigger: str = "manual",
        stop: threading.Event | None = None,
        progress: ProgressFn | None = None,
        lease_owner: str | None = None,
    ) -> RunSummary:
        """Poll one account now; raises AccountBusy/NotFound, returns the summary otherwise.

        ``lease_owner``: the caller already holds the account's lease under this name
        (the scheduler claims before it hands the poll to a thread).
        """
        owner = lease_owner or new_owner()
        started = time.time()
        try:
            # One write transaction (one commit) takes the lease, opens the run record and
            # reads what the run needs: a poll that finds nothing new commits twice in all.
            with self.db.begin() as conn:
                if lease_owner is None:
                    self.leases.claim_in(conn, account_id, owner)
                stale = self.runs.interrupt_stale(conn, account_id, started)
                run_id = self.runs.start(conn, account_id, trigger, started)
                account = self.accounts.get(conn, account_id)
                token = self.accounts.password_token(conn, account_id)
                pending = self.records.pending(conn, account_id)
        except AccountBusy:
            raise  # the lease was not ours: nothing to give back
        except BaseException:
            # A claim made above rolled back with the transaction; a lease the scheduler
            # handed over is given back.
            if lease_owner is not None:
                self.leases.release(account_id, owner)
            raise
        log = RunLog(account_id)
        if stale:
            log("an earlier run was interrupted (its process stopped); picking up from there")
        counts = RunCounts()
        error: str | None = None
        failure: MailhaulError | None = None
        kind: str | None = None
        try:
            password = self.secret_box.decrypt(token, account_id)
            log.add_secret(password)
            with self.running.track(RunGuard(stall_timeout=self.stall_timeout)):
                self._run(
                    account,
                    password,
                    pending,
                    log,
                    counts,
                    owner,
                    stop or threading.Event(),
                    progress,
                )
        except MailhaulError as exc:
            failure = exc
            error = log.scrub(str(exc))
            kind = error_kind(exc)
            log(f"error: {error}")
        except Exception as exc:  # a bug: keep the service alive and say what happened
            kind = "internal"
            logger.exception("account %s: internal error", account_id)
            error = log.scrub(f"internal error: {type(exc).__name__}: {exc}")
            log(error)
        except BaseException:  # Ctrl-C in the foreground: record it, then stop
            error = "interrupted"
            log("interrupted")
            self._finish(run_id, account, owner, counts, error, None, log, started, time.time())
            raise
        finished = time.time()
        self._finish(run_id, account, owner, counts, error, failure, log, started, finished)
        return RunSummary(
            account_id=account_id,
            run_id=run_id,
            result="error" if error else "ok",
            fetched=counts.fetched,
            bytes=counts.bytes,
            deleted=counts.deleted,
            skipped=counts.skipped,
            error=error,
            duration=finished - started,
            error_kind=kind,
        )

    def _finish(
        self,
        run_id: int,
        account: Account,
        owner: str,
        counts: RunCounts,
        error: str | None,
        failure: MailhaulError | None,
        log: RunLog,
        started: float,
        finished: float,
    ) -> None:
        if isinstance(failure, AuthenticationFailed):
            outcome = Outcome.LOGIN_FAILED
        elif isinstance(failure, DestinationMissing):
            outcome = Outcome.DESTINATION_MISSING
        else:
            outcome = Outcome.OK if error is None else Outcome.ERROR
        nxt = after_run(
            finished,
            account.spec.interval,
            outcome,
            account.state,
            account.consecutive_failures,
            self._policy_after(account, started),
            self._random.random(),
        )
        if nxt.paused_reason:
            log(f"paused after {nxt.failures} login failures in a row: check the password")
        summary = (
            f"{counts.fetched} fetched ({counts.bytes} bytes), {counts.deleted} deleted, "
            f"{counts.skipped} left on the server"
        )
        log(f"finished: {'error' if error else 'ok'}; {summary}")
        with self.db.begin() as conn:
            self.runs.finish(
                conn,
                run_id,
                result="error" if error else "ok",
                finished_at=finished,
                fetched=counts.fetched,
                size=counts.bytes,
                deleted=counts.deleted,
                skipped=counts.skipped,
                error=error,
                log=log.text(),
            )
            self.accounts.finish(
                conn,
                account.id,
                owner,
                state=nxt.state.value,
                result="error" if error else "ok",
                error=error,
                finished_at=finished,
                next_poll_at=nxt.at,
                consecutive_failures=nxt.failures,
                paused_reason=nxt.paused_reason,
            )

    def _policy_after(self, account: Account, started: float) -> SchedulePolicy:
        """The schedule policy for the next poll: wider jitter after a late run."""
        policy = self.policy
        if policy.jitter <= 0 or account.next_poll_at is None:
            return policy  # no jitter wanted (or never scheduled): leave the times exact
        late = started - account.next_poll_at
        if late > min(LATE_AFTER, policy.jitter * account.spec.interval):
            return replace(policy, jitter=max(policy.jitter, LATE_JITTER))
        return policy

    def _run(
        self,
        account: Account,
        password: str,
        pending: list[PendingRecord],
        log: RunLog,
        counts: RunCounts,
        owner: str,
        stop: threading.Event,
        progress: ProgressFn | None,
    ) -> None:
        endpoint = account.endpoint(self.timeout)
        self._settle_pending(account, pending, log)
        log(f"connecting to {endpoint.describe()} as {account.spec.username}")
        if endpoint.security is not Security.NONE and not endpoint.verify_cert:
            log("warning: certificate verification is switched off for this account")
        if hasattr(self.sink, "account_label"):  # fills {account} in an MDA command line
            self.sink.account_label = str(account.id)
        source = self.source_factory(endpoint, Credentials(account.spec.username, password), log)
        try:
            source.connect()
            for folder in account.spec.options.folders:
                if stop.is_set():
                    break
                FolderPoll(
                    self,
                    account,
                    source,
                    folder,
                    log,
                    counts,
                    owner,
                    stop,
                    progress,
                    quick_check=not pending,
                ).run()
        except BaseException:
            source.abort()
            raise
        source.close()

    def _settle_pending(self, account: Account, pending: list[PendingRecord], log: RunLog) -> None:
        """Settle deliveries a crashed run left unconfirmed (read when the run started)."""
        if not pending:
            return
        confirmed = dropped = 0
        for record in pending:
            known = (
                self.sink.was_delivered(record.destination, record.receipt)
                if record.receipt
                else None
            )
            with self.db.begin() as conn:
                if known:
                    self.records.confirm_pending(conn, account.id, record, time.time())
                    confirmed += 1
                else:
                    self.records.drop_pending(
                        conn, account.id, record.folder, record.uidvalidity, [record.uid]
                    )
                    dropped += 1
        log(
            f"settled an interrupted run: {confirmed} message(s) had been delivered, "
            f"{dropped} had not and will be fetched again"
        )


__all__ = ["AccountBusy", "Poller", "RunSummary", "SourceFactory"]
