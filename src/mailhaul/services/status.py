"""Status of the service and its accounts (`mailhaul status`, `/healthz`, live metrics)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.incidents import IncidentStore
from mailhaul.adapters.db.runs import RunRecord
from mailhaul.adapters.db.status import (
    AccountRow,
    AccountScope,
    FailedRun,
    StatusStore,
    WorkerRow,
)
from mailhaul.adapters.db.workers import ALIVE_WITHIN
from mailhaul.domain.errors import NotFound
from mailhaul.domain.limits import DAILY_LIMIT_STATE

# A scheduler process whose heartbeat is older than this is counted as gone.
WORKER_STALE_AFTER = ALIVE_WITHIN


@dataclass(frozen=True)
class Health:
    """What `/healthz` reports when the database answers."""

    workers: int
    queue_lag_seconds: float


@dataclass(frozen=True)
class LiveGauges:
    """Values read from the database at scrape time."""

    queue_lag_seconds: float
    accounts_by_state: dict[str, int]
    running_polls: int
    open_incidents: int = 0


@dataclass(frozen=True)
class WorkerStatus:
    """One scheduler process."""

    id: str
    hostname: str
    pid: int
    started_at: float
    heartbeat_at: float
    heartbeat_age: float
    running: int
    stale: bool


@dataclass(frozen=True)
class AccountStatus:
    """One account as status shows it."""

    id: int
    owner: str
    source: str
    username: str
    active: bool
    state: str
    paused_reason: str | None
    last_run: RunRecord | None
    last_run_at: float | None
    last_result: str | None
    last_error: str | None
    next_poll_at: float | None
    fetch_requested_at: float | None
    consecutive_failures: int
    lease_owner: str | None
    last_log: str | None = None
    protocol: str = ""
    destination: str = ""
    sign_in_problem: str | None = None  # OAuth2: why the user has to connect (again)
    security: str = ""  # ssl | starttls | none
    verify_cert: bool = True

    # The words for an account's state, the same in the CLI (`account show|list`,
    # `status`, `fetch`), the web pages and the API.
    @property
    def paused(self) -> bool:
        """Paused after login failures (until resumed, enabled or edited)."""
        return self.paused_reason is not None

    @property
    def sign_in_needed(self) -> bool:
        """OAuth2: not connected yet, or the provider refused the grant (until connected)."""
        return self.sign_in_problem is not None

    @property
    def fetch_blocked(self) -> str | None:
        """Why a fetch cannot run now (disabled, sign-in needed, paused), or None."""
        if not self.active:
            return "The account is disabled: enable it to fetch."
        if self.sign_in_needed:
            return (
                f"Sign-in needed ({self.sign_in_problem}): connect the account to fetch"
                f" (`mailhaul account connect {self.id}`, or Connect on its page)."
            )
        if self.paused:
            return f"The account is paused ({self.paused_reason}): resume or enable it to fetch."
        return None

    @property
    def state_text(self) -> str:
        """The state with what qualifies it: ``paused: 5 login failures in a row``,
        ``ok (disabled)``."""
        text = self.state if self.active else f"{self.state} (disabled)"
        if self.limited_until is not None and self.active:
            return f"{text}: {self.limit_text}"
        reason = self.problem if self.sign_in_needed or self.paused else None
        return f"{text}: {reason}" if reason else text

    @property
    def limited_until(self) -> float | None:
        """While the source host's daily download budget is spent: when fetching resumes
        (the account's next poll); None otherwise."""
        return self.next_poll_at if self.state == DAILY_LIMIT_STATE else None

    @property
    def limit_text(self) -> str:
        """``reached, resumes at 2026-12-04 13:05 UTC`` (the CLI's words; pages localise)."""
        at = self.limited_until
        if at is None:
            return ""
        return "reached, resumes at " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))

    @property
    def problem(self) -> str | None:
        """What is wrong, in a line: the reason of a pause, or the last run's error while
        the account is in an error state; None when all is well."""
        if self.sign_in_needed:
            return self.sign_in_problem
        if self.paused:
            return self.paused_reason
        if self.state in ("ok", "new", "running", DAILY_LIMIT_STATE):
            return None
        return self.last_error

    @property
    def next_run_text(self) -> str | None:
        """Why there is no next-run time to show (``not while paused``, ``queued now``, …);
        None when ``next_poll_at`` is the answer."""
        if not self.active:
            return "not while disabled"
        if self.sign_in_needed:
            return "not until signed in"
        if self.paused:
            return "not while paused"
        if self.state == "running":
            return "running now"
        if self.fetch_requested_at is not None:
            return "queued now"
        if self.next_poll_at is None:
            return "due now"
        return None


@dataclass(frozen=True)
class StatusSummary:
    """The service as a whole."""

    generated_at: float
    accounts_total: int
    accounts_by_state: dict[str, int]
    running_polls: int
    queue_lag_seconds: float
    oldest_due_at: float | None
    workers: list[WorkerStatus] = field(default_factory=list)


@dataclass(frozen=True)
class StatusReport:
    """The summary and the accounts asked for."""

    summary: StatusSummary
    accounts: list[AccountStatus]


def _lag(oldest_due: float | None, now: float) -> float:
    return 0.0 if oldest_due is None else max(0.0, now - oldest_due)


def _worker(row: WorkerRow, now: float) -> WorkerStatus:
    age = max(0.0, now - row.heartbeat_at)
    return WorkerStatus(
        id=row.id,
        hostname=row.hostname,
        pid=row.pid,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        heartbeat_age=age,
        running=row.running,
        stale=age > WORKER_STALE_AFTER,
    )


def _account(row: AccountRow, last_run: RunRecord | None, last_log: str | None) -> AccountStatus:
    return AccountStatus(
        id=row.id,
        owner=row.owner,
        source=f"{row.protocol}/{row.security} {row.host}:{row.port}",
        username=row.username,
        active=row.active,
        state=row.state,
        paused_reason=row.paused_reason,
        last_run=last_run,
        last_run_at=row.last_run_at,
        last_result=row.last_result,
        last_error=row.last_error,
        next_poll_at=row.next_poll_at,
        fetch_requested_at=row.fetch_requested_at,
        consecutive_failures=row.consecutive_failures,
        lease_owner=row.lease_owner,
        last_log=last_log,
        protocol=row.protocol,
        destination=row.deliver_to or row.owner,
        sign_in_problem=row.sign_in_problem,
        security=row.security,
        verify_cert=row.verify_cert,
    )


class StatusService:
    """Read-only views of the service state; each call is one short transaction."""

    def __init__(self, db: Database, store: StatusStore | None = None) -> None:
        self.db = db
        self.store = store or StatusStore()

    def health(self, now: float | None = None) -> Health:
        """Live workers and queue lag; raises StorageError/ConfigError if the DB is down."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            self.store.ping(conn)
            workers = self.store.live_workers(conn, now - WORKER_STALE_AFTER)
            oldest = self.store.oldest_due(conn, now)
        return Health(workers=workers, queue_lag_seconds=_lag(oldest, now))

    def live(self, now: float | None = None) -> LiveGauges:
        """The gauges computed from the database at scrape time."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            oldest = self.store.oldest_due(conn, now)
            counts = self.store.state_counts(conn, now)
            running = self.store.running_polls(conn, now)
            incidents = IncidentStore().count_open(conn)
        return LiveGauges(
            queue_lag_seconds=_lag(oldest, now),
            accounts_by_state=counts,
            running_polls=running,
            open_incidents=incidents,
        )

    def page(
        self, scope: AccountScope, offset: int, limit: int, now: float | None = None
    ) -> tuple[list[AccountStatus], int]:
        """One page of the accounts in ``scope`` (by id) and the total in scope."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            rows, total = self.store.page(conn, now, scope, offset, limit)
            last_runs = self.store.last_runs(conn, [row.id for row in rows])
        return [_account(row, last_runs.get(row.id), None) for row in rows], total

    def account(self, account_id: int, now: float | None = None) -> AccountStatus:
        """One account's status with its last log; NotFound if missing."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            rows = self.store.accounts(conn, now, [account_id])
            if not rows:
                raise NotFound(f"account {account_id} does not exist")
            last_run = self.store.last_runs(conn, [account_id]).get(account_id)
            log = self.store.last_log(conn, account_id)
        return _account(rows[0], last_run, log)

    def accounts(
        self, ids: list[int] | None = None, now: float | None = None
    ) -> list[AccountStatus]:
        """Accounts (every one, or those with ``ids``) with their state, by id; no logs."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            rows = self.store.accounts(conn, now, ids)
            last_runs = self.store.last_runs(conn, ids)
        return [_account(row, last_runs.get(row.id), None) for row in rows]

    def domains(self, within: frozenset[str] | None = None) -> list[str]:
        """The owner domains that have accounts."""
        with self.db.begin() as conn:
            return self.store.domains(conn, within)

    def summary(self, now: float | None = None) -> StatusSummary:
        """The service as a whole, without reading every account (the web status page)."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            return self._summary(conn, now)

    def failed_runs(self, limit: int = 20) -> list[FailedRun]:
        """The newest failed runs of any account, newest first (recent errors)."""
        with self.db.begin() as conn:
            return self.store.failed_runs(conn, max(1, limit))

    def report(self, account_id: int | None = None, now: float | None = None) -> StatusReport:
        """The summary plus every account (or one, with its last log; NotFound if missing)."""
        now = time.time() if now is None else now
        ids = None if account_id is None else [account_id]
        with self.db.begin() as conn:
            rows = self.store.accounts(conn, now, ids)
            if account_id is not None and not rows:
                raise NotFound(f"account {account_id} does not exist")
            last_runs = self.store.last_runs(conn, ids)
            log = None if account_id is None else self.store.last_log(conn, account_id)
            summary = self._summary(conn, now)
        accounts = [_account(row, last_runs.get(row.id), log) for row in rows]
        return StatusReport(summary=summary, accounts=accounts)

    def _summary(self, conn: Connection, now: float) -> StatusSummary:
        counts = self.store.state_counts(conn, now)
        running = self.store.running_polls(conn, now)
        oldest = self.store.oldest_due(conn, now)
        workers = self.store.workers(conn)
        return StatusSummary(
            generated_at=now,
            accounts_total=sum(counts.values()),
            accounts_by_state=dict(sorted(counts.items())),
            running_polls=running,
            queue_lag_seconds=_lag(oldest, now),
            oldest_due_at=oldest,
            workers=[_worker(row, now) for row in workers],
        )


def _run_dict(run: RunRecord | None) -> dict[str, Any] | None:
    if run is None:
        return None
    data = asdict(run)
    del data["log"]  # the account's last log is reported on its own
    duration = None if run.finished_at is None else round(run.finished_at - run.started_at, 3)
    data["duration_seconds"] = duration
    return data


def _worker_dict(worker: WorkerStatus) -> dict[str, Any]:
    data = asdict(worker)
    del data["heartbeat_age"]
    return data | {"heartbeat_age_seconds": round(worker.heartbeat_age, 3)}


def status_dict(report: StatusReport) -> dict[str, Any]:
    """The report as JSON-ready data (`mailhaul status --json`); it holds no password."""
    summary = report.summary
    accounts = []
    for account in report.accounts:
        data = asdict(account)
        data["last_run"] = _run_dict(account.last_run)
        if account.last_log is None:
            del data["last_log"]
        accounts.append(data)
    return {
        "generated_at": summary.generated_at,
        "summary": {
            "accounts_total": summary.accounts_total,
            "accounts_by_state": summary.accounts_by_state,
            "running_polls": summary.running_polls,
            "queue_lag_seconds": round(summary.queue_lag_seconds, 3),
            "oldest_due_at": summary.oldest_due_at,
            "workers": [_worker_dict(w) for w in summary.workers],
        },
        "accounts": accounts,
    }
