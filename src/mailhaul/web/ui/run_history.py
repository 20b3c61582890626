"""An account's whole run history, a page at a time (newest first, optionally without the
runs that found nothing), and each run with its own log: "what happened at 3 am?" has an
answer for as long as `runs.keep_days` keeps the runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhaul.services.users import SessionInfo
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.accounts import int_param
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import render

router = APIRouter(route_class=PageRoute)
SignedIn = Annotated[SessionInfo, Depends(page_access(Access.USER))]

PER_PAGE = 50


@router.get("/accounts/{account_id:int}/runs")
def history(request: Request, account_id: int, info: SignedIn) -> Response:
    """A page of runs older than ``before`` (the newest without it)."""
    access = app_of(request).account_access
    account = access.get(info.principal, account_id)
    before = int_param(request, "before", None)
    hide_empty = request.query_params.get("hide_empty") == "1"
    runs = access.runs(info.principal, account_id, PER_PAGE + 1, before, hide_empty)
    return render(
        request,
        "runs.html",
        info,
        active_nav="accounts",
        account=account,
        runs=runs[:PER_PAGE],
        older=runs[PER_PAGE - 1].id if len(runs) > PER_PAGE else None,
        before=before,
        hide_empty=hide_empty,
        keep_days=app_of(request).settings.runs_keep_days,
    )


@router.get("/accounts/{account_id:int}/runs/{run_id:int}")
def one_run(request: Request, account_id: int, run_id: int, info: SignedIn) -> Response:
    """One run: what it did, and its log."""
    access = app_of(request).account_access
    account = access.get(info.principal, account_id)
    run = access.run(info.principal, account_id, run_id)
    return render(request, "run.html", info, active_nav="accounts", account=account, run=run)
