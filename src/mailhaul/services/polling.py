"""Polling one account: lease → run record → connect → each folder → finish.

The per-folder work (and the never-lose ordering) is in ``folder_poll``. A crash leaves
pending records: the next run first asks its delivery session whether each receipt arrived and
confirms or drops it, so the message is neither lost nor delivered twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from mailhaul.adapters.db.records import PendingRecord
from mailhaul.domain.account import Account
from mailhaul.domain.deadlines import RunGuard, RunningGuards
from mailhaul.domain.errors import (
    AccountBusy,
    AuthenticationFailed,
    ConfigError,
    DestinationMissing,
    ErrorKind,
    MailhaulError,
    SignInNeeded,
    error_kind,
)
from mailhaul.domain.incidents import kind_after_run
from mailhaul.domain.limits import (
    DAILY_LIMIT_STATE,
    DAY,
    DayUsage,
    limit_reached_words,
)
from mailhaul.domain.options import Security, SignInMethod
from mailhaul.domain.planning import RunBudget
from mailhaul.domain.redaction import Redactor
from mailhaul.domain.scheduling import Outcome, PollResult, RunResult, SchedulePolicy, after_run
from mailhaul.domain.units import human_bytes
from mailhaul.services.folder_choice import folders_of
from mailhaul.services.folder_poll import FolderPoll
from mailhaul.services.incidents import RunEnd
from mailhaul.services.leases import Leases, new_owner
from mailhaul.services.poll_run import PollDeps, PollRun, ProgressFn, RunCounts, SourceFactory
from mailhaul.services.runlog import RunLog

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"  # a run stopped by Ctrl-C: no failure of the account

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
    result: PollResult
    fetched: int = 0
    bytes: int = 0
    deleted: int = 0
    skipped: int = 0
    error: str | None = None
    duration: float = 0.0
    error_kind: ErrorKind | None = None
    limited_until: float | None = None
    """The account's daily download limit is reached: it fetches again at this time."""


class _Spent(Exception):
    """The account's daily download budget is spent: the run ends before connecting."""


def _day_usage(deps: PollDeps, conn: Connection, account: Account, now: float) -> DayUsage | None:
    """What the account downloaded in the past day, if its host has a daily budget (``now``:
    the deps' clock, which tests move rather than wait a day)."""
    limit = deps.limits.daily_bytes_for(account.spec.host)
    if limit is None:
        return None
    runs = deps.runs.downloads_since(conn, account.id, now - DAY)
    return DayUsage(account.spec.host, limit, tuple(runs))


@dataclass(frozen=True)
class _Ending:
    """How a run ended: its error text and the error itself (None when it went well)."""

    error: str | None = None
    failure: MailhaulError | None = None
    started: float = 0.0
    finished: float = 0.0


class Poller:
    """Runs polls of accounts; safe to use from several threads at once.

    ``deps`` may be replaced while polls run (a settings change): each run keeps the
    ``PollDeps`` it started with.
    """

    def __init__(self, deps: PollDeps) -> None:
        self.deps = deps
        self.running = RunningGuards()
        """The guards of the polls in progress, so a stop can cut their connections."""
        self._random = random.Random()

    @property
    def leases(self) -> Leases:
        """The account leases (the scheduler claims through them)."""
        return self.deps.leases

    @property
    def policy(self) -> SchedulePolicy:
        """The schedule policy in force."""
        return self.deps.policy

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
        deps = self.deps  # this run's, to its end
        started = time.time()
        try:
            # One write transaction (one commit) takes the lease, opens the run record and
            # reads what the run needs: a poll that finds nothing new commits twice in all.
            with deps.db.begin() as conn:
                if lease_owner is None:
                    deps.leases.claim_in(conn, account_id, owner)
                stale = deps.runs.interrupt_stale(conn, account_id, started)
                run_id = deps.runs.start(conn, account_id, trigger, started)
                account = deps.accounts.get(conn, account_id)
                token = deps.accounts.password_token(conn, account_id)
                pending = deps.records.pending(conn, account_id)
                usage = _day_usage(deps, conn, account, deps.clock())
        except AccountBusy:
            raise  # the lease was not ours: nothing to give back
        except BaseException:
            # A claim made above rolled back with the transaction; a lease the scheduler
            # handed over is given back.
            if lease_owner is not None:
                deps.leases.release(account_id, owner)
            raise
        log = RunLog(account_id)
        if stale:
            log("an earlier run was interrupted (its process stopped); picking up from there")
        counts = RunCounts()
        kind: ErrorKind | None = None
        try:
            if account.damaged is not None:  # never poll on options it could not read
                raise ConfigError(account.damaged)
            if usage is not None and usage.before(deps.clock()).reached:  # wait for it
                log(limit_reached_words(usage, usage.before(deps.clock())))
                raise _Spent
            credentials = deps.sign_in.credentials(account, token)
            server = (account.spec.host, account.spec.port)
            log.hide(Redactor.for_credentials(credentials, server))
            with self.running.track(RunGuard(stall_timeout=deps.stall_timeout)):
                # The source's connections take the run's guard when they are made.
                source = deps.open_source(account.endpoint(deps.timeout), credentials, log)
                delivery = deps.sink.open_session(str(account.id))
                try:
                    stop = stop or threading.Event()
                    run = PollRun(deps, account, source, delivery, log, owner, stop)
                    run.progress, run.counts, run.run_id = progress, counts, run_id
                    options = account.spec.options
                    per_run = options.max_bytes_per_run
                    run.budget = RunBudget(
                        options.max_messages_per_run,
                        per_run if usage is None else usage.run_bytes(per_run, deps.clock()),
                    )
                    self._run(run, pending)
                finally:
                    delivery.close()
                    counts.cert_expires = source.certificate_expires()
            ending = _Ending()
        except _Spent:
            ending = _Ending()
        except MailhaulError as exc:
            ending = _Ending(log.scrub(str(exc)), exc)
            kind = error_kind(exc)
            log(f"error: {ending.error}")
        except Exception as exc:  # a bug: keep the service alive and say what happened
            kind = ErrorKind.INTERNAL
            logger.exception("account %s: internal error", account_id)
            ending = _Ending(log.scrub(f"internal error: {type(exc).__name__}: {exc}"))
            log(ending.error or "")
        except BaseException:  # Ctrl-C in the foreground: record it, then stop
            log(INTERRUPTED)
            ending = _Ending(INTERRUPTED, None, started, time.time())
            self._finish(deps, run_id, (account, owner, counts, log), ending, usage)
            raise
        ending = replace(ending, started=started, finished=time.time())
        resumes_at = self._finish(deps, run_id, (account, owner, counts, log), ending, usage)
        error, finished = ending.error, ending.finished
        return RunSummary(
            account_id=account_id,
            run_id=run_id,
            result=PollResult.ERROR if error else PollResult.OK,
            fetched=counts.fetched,
            bytes=counts.bytes,
            deleted=counts.deleted,
            skipped=counts.skipped,
            error=error,
            duration=finished - started,
            error_kind=kind,
            limited_until=resumes_at,
        )

    def _finish(
        self,
        deps: PollDeps,
        run_id: int,
        run: tuple[Account, str, RunCounts, RunLog],
        ending: _Ending,
        usage: DayUsage | None,
    ) -> float | None:
        """Record the run's end and the account's next poll; returns when the account's
        spent daily download budget lets it fetch again (None when it is not spent)."""
        account, owner, counts, log = run
        error, failure, finished = ending.error, ending.failure, ending.finished
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
            self._policy_after(deps.policy, account, ending.started),
            self._random.random(),
        )
        if nxt.paused_reason:
            log(f"paused after {nxt.failures} login failures in a row: check the password")
        summary = (
            f"{counts.fetched} fetched ({human_bytes(counts.bytes)}, {counts.bytes} bytes), "
            f"{counts.deleted} deleted, {counts.skipped} skipped"
        )
        if any(counts.filtered):
            summary += (
                f"; {counts.spam} spam, {counts.viruses} quarantined, {counts.unscanned} unscanned"
            )
        state = nxt.state.value
        # stopped at a per-run limit: the rest comes now, not an interval later
        next_at = finished if counts.limited and outcome is Outcome.OK else nxt.at
        resumes_at = None
        if usage is not None and outcome is Outcome.OK:
            budget = usage.after(deps.clock(), counts.bytes)
            if budget.reached and budget.resumes_at is not None:
                state, next_at, resumes_at = DAILY_LIMIT_STATE, budget.resumes_at, budget.resumes_at
                if counts.bytes:
                    log(limit_reached_words(usage, budget))
        log(f"finished: {'error' if error else 'ok'}; {summary}")
        with deps.db.begin() as conn:
            deps.runs.finish(
                conn,
                run_id,
                result=RunResult.ERROR if error else RunResult.OK,
                finished_at=finished,
                fetched=counts.fetched,
                size=counts.bytes,
                deleted=counts.deleted,
                skipped=counts.skipped,
                error=error,
                log=log.text(),
                filtered=counts.filtered,
            )
            deps.accounts.finish(
                conn,
                account.id,
                owner,
                state=state,
                result=RunResult.ERROR if error else RunResult.OK,
                error=error,
                finished_at=finished,
                next_poll_at=next_at,
                consecutive_failures=nxt.failures,
                paused_reason=nxt.paused_reason,
            )
            if deps.incidents is not None and error != INTERRUPTED:
                sign_in = isinstance(failure, SignInNeeded) or account.sign_in_problem is not None
                kind = kind_after_run(outcome, nxt.paused_reason is not None, sign_in)
                deps.incidents.after_run(conn, account, RunEnd(kind, error or ""), finished)
                deps.incidents.certificate(conn, account, counts.cert_expires, finished)
        return resumes_at

    @staticmethod
    def _policy_after(policy: SchedulePolicy, account: Account, started: float) -> SchedulePolicy:
        """The schedule policy for the next poll: wider jitter after a late run."""
        if policy.jitter <= 0 or account.next_poll_at is None:
            return policy  # no jitter wanted (or never scheduled): leave the times exact
        late = started - account.next_poll_at
        if late > min(LATE_AFTER, policy.jitter * account.spec.interval):
            return replace(policy, jitter=max(policy.jitter, LATE_JITTER))
        return policy

    def _run(self, run: PollRun, pending: list[PendingRecord]) -> None:
        deps, account, log = run.deps, run.account, run.log
        endpoint = account.endpoint(deps.timeout)
        self._resolve_pending(run, pending)
        log(f"connecting to {endpoint.describe()} as {account.spec.username}")
        if endpoint.security is not Security.NONE and not endpoint.verify_cert:
            log("warning: certificate verification is switched off for this account")
        try:
            self._connect(run)  # may sign in again with a fresh token: a new run.source
            for folder, local in folders_of(run):
                if run.stop.is_set():
                    break
                FolderPoll(run, folder, quick_check=not pending, local=local).poll()
        except BaseException:
            run.source.abort()
            raise
        run.source.close()

    @staticmethod
    def _connect(run: PollRun) -> None:
        """Sign in; an OAuth2 access token the server refuses is refreshed, once."""
        try:
            run.source.connect()
        except AuthenticationFailed:
            account, deps = run.account, run.deps
            if account.spec.sign_in is not SignInMethod.OAUTH2:
                raise
            run.log("the server refused the access token: refreshing it and signing in again")
            run.source.abort()
            credentials = deps.sign_in.after_rejection(account)
            server = (account.spec.host, account.spec.port)
            run.log.hide(Redactor.for_credentials(credentials, server))
            run.source = deps.open_source(account.endpoint(deps.timeout), credentials, run.log)
            run.source.connect()

    @staticmethod
    def _resolve_pending(run: PollRun, pending: list[PendingRecord]) -> None:
        """Confirm or drop the deliveries a crashed run left pending (read at the start)."""
        if not pending:
            return
        deps, account_id = run.deps, run.account.id
        confirmed = dropped = 0
        for record in pending:
            known = (
                run.delivery.was_delivered(record.destination, record.receipt)
                if record.receipt
                else None
            )
            with deps.db.begin() as conn:
                if known:
                    deps.records.confirm_pending(conn, account_id, record, time.time())
                    confirmed += 1
                else:
                    deps.records.drop_pending(
                        conn, account_id, record.folder, record.uidvalidity, [record.uid]
                    )
                    dropped += 1
        run.log(
            f"resolved an interrupted run: {confirmed} message(s) had been delivered, "
            f"{dropped} had not and will be fetched again"
        )


__all__ = ["AccountBusy", "PollDeps", "Poller", "ProgressFn", "RunSummary", "SourceFactory"]
