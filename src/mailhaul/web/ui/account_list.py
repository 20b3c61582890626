"""The account list: filters, sortable columns, paging, and acting on several accounts.

GET /accounts shows a page of the accounts within reach (filtered, sorted and paged in
SQL); while any row is running or queued, htmx re-fetches its rows (GET /accounts/rows,
the same query) every few seconds, keeping the ticked boxes. POST /accounts/bulk enables,
disables or fetches the ticked accounts (or fetches one: a row's Fetch now), or asks
before deleting them (POST /accounts/bulk/delete deletes). Every account goes through the
scoped use cases; one out of reach refuses the whole request as NotFound, before anything
is done. Without JavaScript the forms post and redirect back to the list.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from mailhaul.adapters.db.status import SORT_KEYS
from mailhaul.domain.access import Principal
from mailhaul.domain.account import Account, Trigger
from mailhaul.services.account_access import AccountAccess, AccountPage, AccountQuery
from mailhaul.services.status import AccountStatus
from mailhaul.services.users import SessionInfo
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import Flash, Form, local_path, redirect, render, text

router = APIRouter(route_class=PageRoute)
SignedIn = Annotated[SessionInfo, Depends(page_access(Access.USER))]

PER_PAGE = 50
MAX_SELECTED = 200  # accounts one bulk request may name
STATES = (
    "ok",
    "error",
    "login failed",
    "destination missing",
    "daily limit",
    "paused",
    "sign-in needed",
    "running",
    "new",
    "inactive",
)
SORTS = frozenset({*SORT_KEYS, *(f"-{key}" for key in SORT_KEYS)})
ACTIONS = ("enable", "disable", "fetch", "delete")
MAX_QUERY_INT = 10**9


@dataclass(frozen=True)
class ListView:
    """What a list page shows: the filters, the order and the page asked for."""

    domain: str = ""
    state: str = ""
    search: str = ""
    sort: str = ""
    page: int = 1

    @property
    def filters(self) -> dict[str, str]:
        """The filters and order that are set, as query parameters."""
        pairs = (
            ("domain", self.domain),
            ("state", self.state),
            ("q", self.search),
            ("sort", self.sort),
        )
        return {key: value for key, value in pairs if value}

    def url(self, page: int | None = None, sort: str | None = None) -> str:
        """The list with these filters, at ``page`` (1 if not given), sorted by ``sort``."""
        params = self.filters
        if sort is not None:
            params = {k: v for k, v in params.items() if k != "sort"} | {"sort": sort}
        if page is not None and page > 1:
            params["page"] = str(page)
        return "/accounts" + (f"?{urlencode(params)}" if params else "")

    def here(self) -> str:
        """This very page of the list."""
        return self.url(self.page)

    def rows_url(self) -> str:
        """The rows of this very page alone (the refresh partial)."""
        return "/accounts/rows" + self.here().removeprefix("/accounts")

    def sort_link(self, key: str) -> str:
        """The list sorted by ``key``, or by ``key`` descending when it is already so sorted."""
        return self.url(sort=f"-{key}" if self.sort == key else key)

    def aria_sort(self, key: str) -> str:
        """The ``aria-sort`` value of ``key``'s column header."""
        if self.sort == key:
            return "ascending"
        if self.sort == f"-{key}":
            return "descending"
        return "none"


def _page_number(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 10:
        return 1
    return max(1, min(int(raw), MAX_QUERY_INT))


def view_of(request: Request) -> ListView:
    """The list's filters, order and page from the query (unknown values are dropped)."""
    params = request.query_params
    state = params.get("state", "")
    sort = params.get("sort", "")
    return ListView(
        domain=params.get("domain", "").strip().lower()[:255],
        state=state if state in STATES else "",
        search=params.get("q", "").strip()[:200],
        sort=sort if sort in SORTS else "",
        page=_page_number(params.get("page", "")),
    )


def access_of(request: Request) -> AccountAccess:
    """The account use cases, scoped per call to the actor."""
    return app_of(request).account_access


def _page(request: Request, actor: Principal, view: ListView) -> AccountPage:
    query = AccountQuery(
        domain=view.domain or None,
        state=view.state or None,
        search=view.search or None,
        page=view.page,
        per_page=PER_PAGE,
        sort=view.sort or None,
    )
    return access_of(request).page(actor, query)


def _ticked(values: Sequence[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit() and len(v) <= 10][:MAX_SELECTED]


def pending(account: AccountStatus, now: float) -> bool:
    """Whether a poll of the account runs, is queued, or is due (the list should refresh)."""
    if account.state == "running" or account.next_run_text in ("queued now", "due now"):
        return True
    due = account.next_poll_at
    return account.next_run_text is None and due is not None and due <= now


def _rows_context(request: Request, actor: Principal, view: ListView) -> dict[str, Any]:
    page = _page(request, actor, view)
    now = time.time()
    busy = any(pending(account, now) for account in page.items)
    return {
        "page": page,
        "view": view,
        "busy": busy,
        "ticked": set(_ticked(request.query_params.getlist("id"))),
    }


@router.get("/accounts")
def account_list(request: Request, info: SignedIn) -> Response:
    """Accounts within reach, filtered, sorted and 50 a page (all in SQL)."""
    view = view_of(request)
    actor = info.principal
    return render(
        request,
        "accounts.html",
        info,
        active_nav="accounts",
        domains=access_of(request).domains(actor),
        states=STATES,
        **_rows_context(request, actor, view),
    )


@router.get("/accounts/rows")
def account_rows(request: Request, info: SignedIn) -> Response:
    """The list's rows alone (htmx re-fetches them while a poll runs, is queued or due)."""
    context = _rows_context(request, info.principal, view_of(request))
    return render(request, "_account_rows.html", info, **context)


# --- acting on several accounts --------------------------------------------------------------
def _back(form: FormData) -> str:
    target = local_path(text(form, "back"), "/accounts")
    return target if target == "/accounts" or target.startswith("/accounts?") else "/accounts"


def _chosen(request: Request, actor: Principal, form: FormData) -> list[Account]:
    """The accounts the form names, each within reach (else NotFound for the request)."""
    ids = dict.fromkeys(_ticked([v for v in form.getlist("id") if isinstance(v, str)]))
    access = access_of(request)
    return [access.get(actor, account_id) for account_id in ids]


def _chosen_one(request: Request, actor: Principal, raw: str) -> list[Account]:
    """The one account a row's Fetch now names (within reach, else NotFound)."""
    ids = _ticked([raw])
    return [access_of(request).get(actor, ids[0])] if ids else []


def _named(accounts: Sequence[Account]) -> str:
    names = [f"{a.spec.username} at {a.spec.host}" for a in accounts[:3]]
    more = len(accounts) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _count(n: int) -> str:
    return f"{n} account{'' if n == 1 else 's'}"


def _set_active(
    request: Request, actor: Principal, chosen: Sequence[Account], active: bool
) -> Flash:
    access = access_of(request)
    for account in chosen:
        access.set_active(actor, account.id, active)
    if active:
        return ("success", f"Enabled {_count(len(chosen))}: polled again, due now.")
    return ("success", f"Disabled {_count(len(chosen))}: not polled until enabled.")


def _fetch(request: Request, actor: Principal, chosen: Sequence[Account]) -> list[Flash]:
    access = access_of(request)
    queued: list[Account] = []
    blocked: list[str] = []
    for account in chosen:
        reason = access.account_status(actor, account.id).fetch_blocked
        if reason is None:
            access.fetch_now(actor, account.id, Trigger.WEB)
            queued.append(account)
        else:
            blocked.append(f"{account.spec.username} at {account.spec.host}: {reason}")
    flashes: list[Flash] = []
    if queued:
        flashes.append(("success", f"Fetch queued for {_named(queued)}."))
    if blocked:
        flashes.append(("warning", "Not fetched: " + "; ".join(blocked[:5])))
    return flashes


@router.post("/accounts/bulk")
def bulk(request: Request, info: SignedIn, form: Form) -> Response:
    """Enable, disable or fetch the ticked accounts (or fetch one row's), or ask before
    deleting them."""
    actor = info.principal
    back = _back(form)
    one = text(form, "fetch_one")
    action = "fetch" if one else text(form, "action")
    if action not in ACTIONS:
        wanted = "Choose what to do with the ticked accounts: Enable, Disable, Fetch now or Delete."
        return redirect(request, back, info, ("error", wanted))
    chosen = _chosen(request, actor, form) if not one else _chosen_one(request, actor, one)
    if not chosen:
        return redirect(request, back, info, ("error", "Tick at least one account first."))
    if action == "delete":
        return render(
            request,
            "account_bulk_delete.html",
            info,
            active_nav="accounts",
            chosen=chosen,
            back=back,
        )
    if action == "fetch":
        return redirect(request, back, info, *_fetch(request, actor, chosen))
    return redirect(request, back, info, _set_active(request, actor, chosen, action == "enable"))


@router.post("/accounts/bulk/delete")
def bulk_delete(request: Request, info: SignedIn, form: Form) -> Response:
    """Delete the confirmed accounts and their history; delivered mail stays."""
    actor = info.principal
    back = _back(form)
    chosen = _chosen(request, actor, form)
    if not chosen:
        return redirect(request, back, info, ("error", "Tick at least one account first."))
    access = access_of(request)
    for account in chosen:
        access.delete(actor, account.id)
    done = f"Deleted {_named(chosen)}. Delivered mail is untouched."
    return redirect(request, back, info, ("success", done))
