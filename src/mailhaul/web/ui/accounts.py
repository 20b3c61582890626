"""An account's page, and what can be done there (the list is in `account_list`).

Fetch now queues the account through the scheduler (`AccountAccess.fetch_now`); the page
then shows the progress: with htmx, the ``#live`` part re-renders itself every second until
a run newer than the one before the click has finished; without JavaScript, a reload shows
the same (and a <noscript> refresh does it by itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhaul.adapters.db.runs import RunRecord
from mailhaul.domain.access import Principal
from mailhaul.domain.account import Trigger
from mailhaul.domain.scheduling import RunResult
from mailhaul.domain.units import human_bytes
from mailhaul.services.account_access import AccountAccess
from mailhaul.services.push_status import PushStatus
from mailhaul.services.status import AccountStatus
from mailhaul.services.users import SessionInfo
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import Form, is_htmx, redirect, render, text

HISTORY = 10  # incidents the account page lists
router = APIRouter(route_class=PageRoute)
SignedIn = Annotated[SessionInfo, Depends(page_access(Access.USER))]

# Stop polling for a fetch's result after this long (the page says to reload later).
PROGRESS_GIVE_UP = 600.0
MAX_QUERY_INT = 10**9


def int_param(request: Request, name: str, default: int | None) -> int | None:
    """A whole-number query parameter; ``default`` when missing or not a number."""
    raw = request.query_params.get(name, "")
    if not raw.isdigit() or len(raw) > 10:
        return default
    return min(int(raw), MAX_QUERY_INT)


def float_param(request: Request, name: str) -> float | None:
    """A number query parameter (a timestamp), or None."""
    raw = request.query_params.get(name, "")
    if not raw or len(raw) > 20:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value == value and 0 <= value < 1e11 else None  # not NaN, sane


def access_of(request: Request) -> AccountAccess:
    """The account use cases, scoped per call to the actor."""
    return app_of(request).account_access


# --- an account's page ------------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    """Where a requested fetch is: queued, running, done, or unable to run."""

    phase: str  # queued | running | done | blocked | gave up
    message: str
    run: RunRecord | None = None
    after: int = 0
    started: float = 0.0

    @property
    def polling(self) -> bool:
        """Whether the page should ask again shortly."""
        return self.phase in ("queued", "running")


def progress_of(
    status: AccountStatus,
    after: int | None,
    started: float | None,
    workers: int,
    current: RunRecord | None = None,
) -> Progress | None:
    """The progress of a fetch requested when the newest run was ``after``; ``current``:
    the account's newest run, whose counts a running poll keeps up to date."""
    if after is None:
        return None
    started = started or time.time()
    run = status.last_run
    if run is not None and run.id > after:
        return Progress("done", "", run, after, started)
    if status.fetch_blocked is not None:
        return Progress("blocked", status.fetch_blocked)
    if time.time() - started > PROGRESS_GIVE_UP:
        return Progress("gave up", "The fetch has not finished yet: reload the page later.")
    if current is not None and current.id > after and current.result == RunResult.RUNNING:
        return Progress("running", running_text(current), current, after, started)
    if status.state == "running":
        return Progress("running", "Fetching…", None, after, started)
    message = "Queued: waiting for the scheduler…"
    if workers == 0:
        message = (
            "Queued, but no scheduler is running: the fetch starts when "
            "`mailhaul serve` or `mailhaul worker` runs."
        )
    return Progress("queued", message, None, after, started)


def running_text(run: RunRecord) -> str:
    """What a running fetch has done so far, in words."""
    if not run.fetched:
        return "Fetching: connecting and listing…"
    plural = "" if run.fetched == 1 else "s"
    return f"Fetching: {run.fetched} message{plural} ({human_bytes(run.bytes)}) so far…"


def _live_context(
    request: Request, actor: Principal, account_id: int, after: int | None, started: float | None
) -> dict[str, Any]:
    access = access_of(request)
    account = access.get(actor, account_id)
    status = access.account_status(actor, account_id)
    workers = app_of(request).accounts.workers_alive() if after is not None else 1
    incidents = app_of(request).incidents
    history = incidents.listed([account_id], open_only=False)[:HISTORY]
    incident = next((i for i in history if i.open and i.kind != "cert_expiring"), None)
    runs = access.runs(actor, account_id, 20)
    return {
        "account": account,
        "status": status,
        "incident": incident,
        "incidents": history,
        "incident_notices": incidents.notices_of(incident.id) if incident else [],
        "runs": runs,
        "refused": access.refused(actor, account_id),
        "progress": progress_of(status, after, started, workers, runs[0] if runs else None),
        "files_folders": app_of(request).sink.files_folders(account.spec.destination),
        "push": PushStatus(
            app_of(request).db,
            app_of(request).settings.push_enabled,
            app_of(request).settings.limits,
        ).of(account),
    }


@router.get("/accounts/{account_id:int}")
def account_page(request: Request, account_id: int, info: SignedIn) -> Response:
    """Status, actions, last run log, run history, refused messages."""
    after = int_param(request, "after", None)
    context = _live_context(request, info.principal, account_id, after, float_param(request, "t"))
    return render(request, "account.html", info, active_nav="accounts", **context)


@router.get("/accounts/{account_id:int}/live")
def account_live(request: Request, account_id: int, info: SignedIn) -> Response:
    """The part of the account page that changes while a fetch runs (htmx polls it)."""
    after = int_param(request, "after", None)
    context = _live_context(request, info.principal, account_id, after, float_param(request, "t"))
    return render(request, "_account_live.html", info, **context)


@router.post("/accounts/{account_id:int}/fetch")
def fetch_now(request: Request, account_id: int, info: SignedIn) -> Response:
    """Queue a fetch through the scheduler, then show its progress."""
    access = access_of(request)
    actor = info.principal
    status = access.account_status(actor, account_id)
    newest = access.runs(actor, account_id, 1)
    after = newest[0].id if newest else 0
    started = time.time()
    if status.fetch_blocked is None:
        access.fetch_now(actor, account_id, Trigger.WEB)
    if is_htmx(request):
        context = _live_context(request, actor, account_id, after, started)
        return render(request, "_account_live.html", info, **context)
    query = urlencode({"after": after, "t": f"{started:.3f}"})
    return redirect(request, f"/accounts/{account_id}?{query}")


@router.post("/accounts/{account_id:int}/enable")
def enable(request: Request, account_id: int, info: SignedIn) -> Response:
    """Enable the account: it is due at once, its failures forgiven."""
    access_of(request).set_active(info.principal, account_id, True)
    return redirect(
        request,
        f"/accounts/{account_id}",
        info,
        ("success", "Enabled: the account is polled again (its first poll is due now)."),
    )


@router.post("/accounts/{account_id:int}/disable")
def disable(request: Request, account_id: int, info: SignedIn) -> Response:
    """Disable the account: it is not polled until enabled."""
    access_of(request).set_active(info.principal, account_id, False)
    return redirect(
        request,
        f"/accounts/{account_id}",
        info,
        ("success", "Disabled: the account is not polled until you enable it."),
    )


@router.post("/accounts/{account_id:int}/resume")
def resume(request: Request, account_id: int, info: SignedIn) -> Response:
    """Resume an account paused after login failures: due at once, failures forgiven."""
    account = access_of(request).resume(info.principal, account_id)
    message = "Resumed: the account is polled again (its next poll is due now)."
    if not account.spec.active:
        message = "Resumed, but the account is disabled: enable it to poll it."
    return redirect(request, f"/accounts/{account_id}", info, ("success", message))


@router.post("/accounts/{account_id:int}/retry")
def retry(request: Request, account_id: int, info: SignedIn, form: Form) -> Response:
    """Forget refusals (one, or all) so the next run tries those messages again."""
    uid = text(form, "uid")[:200] or None
    count = access_of(request).retry(info.principal, account_id, uid)
    message = (
        f"{count} refused message(s) will be tried again on the next run."
        if count
        else "There was no such refused message."
    )
    return redirect(
        request, f"/accounts/{account_id}", info, ("success" if count else "info", message)
    )


@router.get("/accounts/{account_id:int}/delete")
def delete_page(request: Request, account_id: int, info: SignedIn) -> Response:
    """Ask before deleting."""
    account = access_of(request).get(info.principal, account_id)
    return render(request, "account_delete.html", info, active_nav="accounts", account=account)


@router.post("/accounts/{account_id:int}/delete")
def delete(request: Request, account_id: int, info: SignedIn) -> Response:
    """Delete the account and its history; delivered mail stays where it is."""
    access = access_of(request)
    account = access.get(info.principal, account_id)
    access.delete(info.principal, account_id)
    spec = account.spec
    done = f"Deleted account {spec.username} at {spec.host}. Delivered mail is untouched."
    return redirect(request, "/accounts", info, ("success", done))
