"""Service results as response bodies (no password ever makes it into one)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from mailhaul.adapters.db.records import RefusedRecord
from mailhaul.adapters.db.runs import RunRecord
from mailhaul.adapters.db.users import ApiKey as ApiKeyRecord
from mailhaul.adapters.db.users import User as UserRecord
from mailhaul.domain.account import Account as AccountRecord
from mailhaul.services.connection_check import ConnectionReport as Report
from mailhaul.services.status import AccountStatus
from mailhaul.web.api.v1 import account_schemas, schemas

_STATE_FIELDS = (
    "state",
    "paused_reason",
    "sign_in_problem",
    "last_run_at",
    "last_result",
    "last_error",
    "next_poll_at",
    "fetch_requested_at",
    "consecutive_failures",
)


def _state(status: AccountStatus) -> dict[str, Any]:
    values = {name: getattr(status, name) for name in _STATE_FIELDS}
    return {**values, "limit_resumes_at": status.limited_until}


def run(record: RunRecord) -> account_schemas.Run:
    """A run without its log."""
    values = {k: v for k, v in asdict(record).items() if k not in ("log", "account_id")}
    duration = None if record.finished_at is None else record.finished_at - record.started_at
    return account_schemas.Run(**values, duration=None if duration is None else round(duration, 3))


def account(record: AccountRecord, status: AccountStatus) -> account_schemas.Account:
    """An account's settings with its displayed state (running, paused, …)."""
    spec = record.spec
    return account_schemas.Account(
        id=record.id, **spec.as_dict(), destination=spec.destination, **_state(status)
    )


def summary(status: AccountStatus) -> account_schemas.AccountSummary:
    """A row of the account list."""
    return account_schemas.AccountSummary(
        id=status.id,
        owner=status.owner,
        protocol=status.protocol,
        source=status.source,
        username=status.username,
        destination=status.destination,
        active=status.active,
        last_run=None if status.last_run is None else run(status.last_run),
        **_state(status),
    )


def refused(record: RefusedRecord) -> account_schemas.RefusedMessage:
    """A refused message."""
    return account_schemas.RefusedMessage(
        folder=record.folder, uid=record.uid, note=record.note, recorded_at=record.recorded_at
    )


def report(result: Report) -> account_schemas.ConnectionReport:
    """A connection test's findings."""
    return account_schemas.ConnectionReport(
        ok=result.ok,
        message=result.message,
        error_kind=result.error_kind,
        folders=dict(result.folders),
        server_folders=list(result.server_folders),
        log=list(result.log),
    )


def user(record: UserRecord) -> schemas.User:
    """A user without the password hash."""
    return schemas.User.model_validate(record.as_dict())


def key(record: ApiKeyRecord) -> schemas.ApiKey:
    """An API key without its secret."""
    return schemas.ApiKey.model_validate(record.as_dict())
