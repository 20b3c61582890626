"""Read-only queries behind `mailhaul status`, `/healthz` and the scrape-time metrics.

An account's displayed state is derived, in this order: ``running`` while a lease is held
and not expired, ``sign-in needed`` while ``sign_in_problem`` is set (OAuth2), ``paused``
while ``paused_reason`` is set, otherwise the stored ``state``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, case, func, or_, select

from mailhaul.adapters.db.runs import RunRecord, run_record
from mailhaul.adapters.db.tables import accounts, runs, workers
from mailhaul.domain.scheduling import RunResult


@dataclass(frozen=True)
class AccountRow:
    """An account's identity and service state, as status shows it (no password)."""

    id: int
    owner: str
    protocol: str
    security: str
    host: str
    port: int
    username: str
    active: bool
    state: str  # derived: running | paused | the stored state
    stored_state: str
    paused_reason: str | None
    lease_owner: str | None
    sign_in_problem: str | None
    lease_expires: float | None
    next_poll_at: float | None
    fetch_requested_at: float | None
    last_run_at: float | None
    last_result: str | None
    last_error: str | None
    consecutive_failures: int
    deliver_to: str = ""
    verify_cert: bool = True


@dataclass(frozen=True)
class AccountScope:
    """Which accounts a query may see, and the list's filters.

    ``owner`` limits to one owner's accounts (a user), ``domains`` to owners in these
    domains (a domain admin); None means no limit. ``domain``, ``state`` and ``search`` are
    the filters a person picks; ``sort`` the order of a page (one of SORT_KEYS, ``-`` in
    front for descending; None: by id).
    """

    owner: str | None = None
    domains: frozenset[str] | None = None
    domain: str | None = None
    state: str | None = None
    search: str | None = None
    sort: str | None = None


@dataclass(frozen=True)
class FailedRun:
    """A run that ended in an error, with its account's owner and source host."""

    run: RunRecord
    owner: str
    host: str


@dataclass(frozen=True)
class WorkerRow:
    """One scheduler process and its last heartbeat."""

    id: str
    hostname: str
    pid: int
    started_at: float
    heartbeat_at: float
    running: int


def _lease_held(now: float) -> ColumnElement[bool]:
    return and_(accounts.c.lease_owner.is_not(None), accounts.c.lease_expires >= now)


def derived_state(now: float) -> ColumnElement[str]:
    """SQL for the displayed state of an account at ``now``."""
    return case(
        (_lease_held(now), "running"),
        (accounts.c.sign_in_problem.is_not(None), "sign-in needed"),
        (accounts.c.paused_reason.is_not(None), "paused"),
        else_=accounts.c.state,
    )


def _due_at() -> ColumnElement[Any]:
    """When an account became due: its next poll, or a "fetch now" request if earlier."""
    requested = accounts.c.fetch_requested_at
    return case(
        (
            and_(
                requested.is_not(None),
                or_(accounts.c.next_poll_at.is_(None), requested < accounts.c.next_poll_at),
            ),
            requested,
        ),
        else_=accounts.c.next_poll_at,
    )


# A run's counts without its log.
_RUN_COUNTS = tuple(column for column in runs.c if column.name != "log")


def _account_rows(now: float) -> Select[Any]:
    c = accounts.c
    return select(
        c.id,
        c.owner,
        c.protocol,
        c.security,
        c.host,
        c.port,
        c.username,
        c.active,
        derived_state(now).label("derived"),
        c.state,
        c.paused_reason,
        c.sign_in_problem,
        c.lease_owner,
        c.lease_expires,
        c.next_poll_at,
        c.fetch_requested_at,
        c.last_run_at,
        c.last_result,
        c.last_error,
        c.consecutive_failures,
        c.deliver_to,
        c.verify_cert,
    )


def _account_row(r: Row[Any]) -> AccountRow:
    return AccountRow(
        id=r.id,
        owner=r.owner,
        protocol=r.protocol,
        security=r.security,
        host=r.host,
        port=r.port,
        username=r.username,
        active=bool(r.active),
        state=r.derived,
        stored_state=r.state,
        paused_reason=r.paused_reason,
        sign_in_problem=r.sign_in_problem,
        lease_owner=r.lease_owner,
        lease_expires=r.lease_expires,
        next_poll_at=r.next_poll_at,
        fetch_requested_at=r.fetch_requested_at,
        last_run_at=r.last_run_at,
        last_result=r.last_result,
        last_error=r.last_error,
        consecutive_failures=r.consecutive_failures,
        deliver_to=r.deliver_to,
        verify_cert=bool(r.verify_cert),
    )


def _scope_conditions(scope: AccountScope, now: float) -> list[ColumnElement[bool]]:
    c = accounts.c
    conditions: list[ColumnElement[bool]] = []
    if scope.owner is not None:
        conditions.append(func.lower(c.owner) == scope.owner.lower())
    if scope.domains is not None:
        conditions.append(c.owner_domain.in_(sorted(scope.domains)))
    if scope.domain:
        conditions.append(c.owner_domain == scope.domain.lower())
    if scope.state == "inactive":
        conditions.append(c.active.is_(False))
    elif scope.state:
        conditions.append(derived_state(now) == scope.state)
    if scope.search:
        pattern = scope.search.lower()
        conditions.append(
            or_(
                func.lower(c.owner).contains(pattern, autoescape=True),
                func.lower(c.host).contains(pattern, autoescape=True),
                func.lower(c.username).contains(pattern, autoescape=True),
            )
        )
    return conditions


def _sort_columns(now: float) -> dict[str, ColumnElement[Any]]:
    c = accounts.c
    return {
        "owner": func.lower(c.owner),
        "host": func.lower(c.host),
        "state": derived_state(now),
        "last_run": c.last_run_at,
        "next_run": c.next_poll_at,
    }


SORT_KEYS = ("owner", "host", "state", "last_run", "next_run")


def _order(sort: str | None, now: float) -> list[ColumnElement[Any]]:
    """ORDER BY for ``sort`` (``host``, ``-last_run``…): accounts without a value last
    either way, then by id (a stable order for paging)."""
    key = (sort or "").removeprefix("-")
    column = _sort_columns(now).get(key)
    if column is None:
        return [accounts.c.id]
    descending = bool(sort and sort.startswith("-"))
    missing_last = case((column.is_(None), 1), else_=0)
    return [missing_last, column.desc() if descending else column.asc(), accounts.c.id]


class StatusStore:
    """Read-only status queries; every method runs inside the caller's transaction."""

    def ping(self, conn: Connection) -> None:
        """Touch the schema (raises if the database or its tables cannot be read)."""
        conn.execute(select(func.count()).select_from(workers)).scalar_one()

    def accounts(
        self, conn: Connection, now: float, ids: Sequence[int] | None = None
    ) -> list[AccountRow]:
        """Accounts (all, or those with ``ids``) with their derived state, by id."""
        query = _account_rows(now).order_by(accounts.c.id)
        if ids is not None:
            query = query.where(accounts.c.id.in_(list(ids)))
        return [_account_row(r) for r in conn.execute(query)]

    def page(
        self, conn: Connection, now: float, scope: AccountScope, offset: int, limit: int
    ) -> tuple[list[AccountRow], int]:
        """One page of the accounts in ``scope`` in its order, and how many there are."""
        conditions = _scope_conditions(scope, now)
        total = conn.execute(
            select(func.count()).select_from(accounts).where(*conditions)
        ).scalar_one()
        query = _account_rows(now).where(*conditions).order_by(*_order(scope.sort, now))
        rows = conn.execute(query.offset(offset).limit(limit))
        return [_account_row(r) for r in rows], int(total)

    def domains(self, conn: Connection, within: frozenset[str] | None = None) -> list[str]:
        """The owner domains that have accounts (within ``within``), sorted."""
        query = select(accounts.c.owner_domain).distinct().order_by(accounts.c.owner_domain)
        if within is not None:
            query = query.where(accounts.c.owner_domain.in_(sorted(within)))
        return [str(d) for d in conn.execute(query).scalars()]

    def state_counts(self, conn: Connection, now: float) -> dict[str, int]:
        """How many accounts are in each derived state."""
        state = derived_state(now).label("derived")
        rows = conn.execute(select(state, func.count()).group_by(state))
        return {str(row[0]): int(row[1]) for row in rows}

    def running_polls(self, conn: Connection, now: float) -> int:
        """Accounts whose lease is held and not expired."""
        query = select(func.count()).select_from(accounts).where(_lease_held(now))
        return int(conn.execute(query).scalar_one())

    def oldest_due(self, conn: Connection, now: float) -> float | None:
        """The earliest due time among due, active, unpaused accounts nobody is polling."""
        due_at = _due_at()
        query = select(func.min(due_at)).where(
            accounts.c.active.is_(True),
            accounts.c.paused_reason.is_(None),
            accounts.c.sign_in_problem.is_(None),
            due_at <= now,
            ~_lease_held(now),
        )
        value = conn.execute(query).scalar_one_or_none()
        return None if value is None else float(value)

    def last_runs(self, conn: Connection, ids: Sequence[int] | None = None) -> dict[int, RunRecord]:
        """Each account's newest finished run (not ``running``), keyed by account id."""
        latest = select(func.max(runs.c.id).label("id")).where(runs.c.result != RunResult.RUNNING)
        if ids is not None:
            latest = latest.where(runs.c.account_id.in_(list(ids)))
        latest_ids = latest.group_by(runs.c.account_id).subquery()
        query = select(*_RUN_COUNTS).join(latest_ids, runs.c.id == latest_ids.c.id)
        return {r.account_id: run_record(r) for r in conn.execute(query)}

    def failed_runs(self, conn: Connection, limit: int) -> list[FailedRun]:
        """The newest runs that ended in an error or were interrupted, newest first."""
        query = (
            select(*_RUN_COUNTS, accounts.c.owner, accounts.c.host)
            .join(accounts, accounts.c.id == runs.c.account_id)
            .where(runs.c.result.in_([RunResult.ERROR, RunResult.INTERRUPTED]))
            .order_by(runs.c.id.desc())
            .limit(limit)
        )
        return [
            FailedRun(run=run_record(r), owner=r.owner, host=r.host) for r in conn.execute(query)
        ]

    def last_log(self, conn: Connection, account_id: int) -> str | None:
        """The log of the account's newest finished run, or None."""
        query = (
            select(runs.c.log)
            .where(runs.c.account_id == account_id, runs.c.result != RunResult.RUNNING)
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        value = conn.execute(query).scalar_one_or_none()
        return None if value is None else str(value)

    def workers(self, conn: Connection) -> list[WorkerRow]:
        """Every registered scheduler process, most recent heartbeat first."""
        query = select(workers).order_by(workers.c.heartbeat_at.desc(), workers.c.id)
        return [
            WorkerRow(
                id=r.id,
                hostname=r.hostname,
                pid=r.pid,
                started_at=r.started_at,
                heartbeat_at=r.heartbeat_at,
                running=r.running,
            )
            for r in conn.execute(query)
        ]

    def live_workers(self, conn: Connection, since: float) -> int:
        """Scheduler processes with a heartbeat at or after ``since``."""
        query = select(func.count()).select_from(workers).where(workers.c.heartbeat_at >= since)
        return int(conn.execute(query).scalar_one())
