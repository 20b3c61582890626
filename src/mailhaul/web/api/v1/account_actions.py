"""What one does to an account: enable, disable, fetch now, test, runs, log, refusals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from mailhaul.domain.account import Trigger
from mailhaul.domain.validation import check_password
from mailhaul.web.api.v1 import account_schemas, convert
from mailhaul.web.api.v1.accounts import account_body
from mailhaul.web.api.v1.deps import AccountId, AnyUser, Mailhaul
from mailhaul.web.api.v1.errors import (
    BUSY,
    INVALID,
    MALFORMED,
    NOT_FOUND,
    AccountInactive,
    responses,
)
from mailhaul.web.api.v1.specs import default_owner, new_password, patched_spec, spec_from_fields

router = APIRouter(prefix="/accounts", tags=["accounts"])

Limit = Annotated[int, Query(ge=1, le=500, description="How many runs, newest first.")]
Before = Annotated[
    int | None, Query(ge=1, le=2**62, description="Only runs older than this run id.")
]
HideEmpty = Annotated[bool, Query(description="Leave out the runs that found nothing.")]
RunId = Annotated[int, Path(ge=1, le=2**62, description="A run's id.")]


@router.post("/test", responses=responses(INVALID, MALFORMED))
def check_new_settings(
    body: account_schemas.AccountCreate, actor: AnyUser, app: Mailhaul
) -> account_schemas.ConnectionReport:
    """Test settings not saved yet: connect, log in, count the folders; fetch nothing.

    A server that refuses is still a 200 with ``ok: false`` and the server's own words.
    """
    password = body.password or ""
    check_password(password)
    spec = spec_from_fields(body, body.owner or default_owner(actor), app.settings)
    return convert.report(app.account_access.check_new(actor, spec, password))


@router.post("/{account_id}/test", responses=responses(NOT_FOUND, INVALID, MALFORMED))
def check_account(
    account_id: AccountId,
    actor: AnyUser,
    app: Mailhaul,
    body: Annotated[account_schemas.AccountPatch | None, Body()] = None,
) -> account_schemas.ConnectionReport:
    """Test an account: its stored settings and password, or the changes in the body."""
    access = app.account_access
    previous = access.get(actor, account_id)
    spec = None if body is None else patched_spec(previous.spec, body)
    password = None if body is None else new_password(body.password)
    if password is not None:
        check_password(password)
    return convert.report(access.check_stored(actor, account_id, spec, password))


@router.post("/{account_id}/enable", responses=responses(NOT_FOUND, INVALID))
def enable_account(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> account_schemas.Account:
    """Switch polling on (due at once; a paused account is unpaused)."""
    record = app.account_access.set_active(actor, account_id, True)
    return account_body(app, actor, record)


@router.post("/{account_id}/disable", responses=responses(NOT_FOUND, INVALID))
def disable_account(
    account_id: AccountId, actor: AnyUser, app: Mailhaul
) -> account_schemas.Account:
    """Switch polling off."""
    record = app.account_access.set_active(actor, account_id, False)
    return account_body(app, actor, record)


@router.post("/{account_id}/resume", responses=responses(NOT_FOUND, INVALID))
def resume_account(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> account_schemas.Account:
    """Poll an account paused after login failures again (due at once); a no-op otherwise."""
    record = app.account_access.resume(actor, account_id)
    return account_body(app, actor, record)


@router.post("/{account_id}/fetch", status_code=202, responses=responses(NOT_FOUND, BUSY, INVALID))
def fetch_now(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> account_schemas.FetchQueued:
    """Put the account at the head of the scheduler's queue ("Fetch now"); 202 at once.

    A disabled or paused account is refused (409 ``inactive``): enable or resume it first.

    Follow the run with ``GET /accounts/{id}`` (``fetch_requested_at`` clears when it
    starts, ``state`` is ``running`` meanwhile) and ``GET /accounts/{id}/log``.
    """
    access = app.account_access
    blocked = access.account_status(actor, account_id).fetch_blocked
    if blocked is not None:  # nothing would ever poll it: say so, in the web UI's words
        raise AccountInactive(f"account {account_id}: {blocked}")
    access.fetch_now(actor, account_id, Trigger.API)
    record = access.get(actor, account_id)
    return account_schemas.FetchQueued(
        account_id=account_id,
        fetch_requested_at=record.fetch_requested_at,
        workers_alive=app.accounts.workers_alive(),
    )


@router.get("/{account_id}/runs", responses=responses(NOT_FOUND, INVALID))
def account_runs(
    account_id: AccountId,
    actor: AnyUser,
    app: Mailhaul,
    limit: Limit = 50,
    before: Before = None,
    hide_empty: HideEmpty = False,
) -> list[account_schemas.Run]:
    """The run history: time, result, messages, bytes, duration (newest first); the next
    page with ``before`` = the last id of this one."""
    history = app.account_access.runs(actor, account_id, limit, before, hide_empty)
    return [convert.run(run) for run in history]


@router.get("/{account_id}/runs/{run_id}", responses=responses(NOT_FOUND, INVALID))
def account_run(
    account_id: AccountId, run_id: RunId, actor: AnyUser, app: Mailhaul
) -> account_schemas.RunWithLog:
    """One run, with its own log (kept for `runs.keep_days`)."""
    run = app.account_access.run(actor, account_id, run_id)
    return account_schemas.RunWithLog(**convert.run(run).model_dump(), log=run.log)


@router.get("/{account_id}/log", responses=responses(NOT_FOUND, INVALID))
def last_run_log(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> account_schemas.RunLog:
    """The last finished run's log ("Last run log")."""
    return account_schemas.RunLog(
        account_id=account_id, log=app.account_access.last_log(actor, account_id)
    )


@router.get("/{account_id}/refused", responses=responses(NOT_FOUND, INVALID))
def refused_messages(
    account_id: AccountId, actor: AnyUser, app: Mailhaul
) -> list[account_schemas.RefusedMessage]:
    """Messages the local backend refused for good (they stay on the server)."""
    return [convert.refused(r) for r in app.account_access.refused(actor, account_id)]


@router.post("/{account_id}/retry", responses=responses(NOT_FOUND, INVALID, MALFORMED))
def retry_refused(
    account_id: AccountId,
    actor: AnyUser,
    app: Mailhaul,
    body: Annotated[account_schemas.RetryRequest | None, Body()] = None,
) -> account_schemas.RetryResult:
    """Forget refusals (all, or one UID) so that the next run tries them again."""
    uid = None if body is None else body.uid
    cleared = app.account_access.retry(actor, account_id, uid)
    return account_schemas.RetryResult(account_id=account_id, cleared=cleared)
