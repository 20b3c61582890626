"""An account's quarantine in the panel: the infected messages the virus check kept out of
the mailbox, each released into it or deleted, by whoever may see the account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhaul.services.users import SessionInfo
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import redirect, render

router = APIRouter(route_class=PageRoute)
SignedIn = Annotated[SessionInfo, Depends(page_access(Access.USER))]


@router.get("/accounts/{account_id:int}/quarantine")
def quarantine_page(request: Request, account_id: int, info: SignedIn) -> Response:
    """The account's quarantined messages, newest first."""
    app = app_of(request)
    account = app.account_access.get(info.principal, account_id)
    entries = app.quarantine_access.listed(info.principal, account_id)
    return render(
        request, "quarantine.html", info, active_nav="accounts", account=account, entries=entries
    )


@router.post("/accounts/{account_id:int}/quarantine/{message_id:int}/release")
def release(request: Request, account_id: int, message_id: int, info: SignedIn) -> Response:
    """Deliver a quarantined message into the account's mailbox after all."""
    entry = app_of(request).quarantine_access.release(info.principal, account_id, message_id)
    note = f"Released into the mailbox: {entry.subject or 'the message'} ({entry.signature})."
    return redirect(request, f"/accounts/{account_id}/quarantine", info, ("success", note))


@router.post("/accounts/{account_id:int}/quarantine/{message_id:int}/delete")
def delete(request: Request, account_id: int, message_id: int, info: SignedIn) -> Response:
    """Delete a quarantined message for good."""
    entry = app_of(request).quarantine_access.delete(info.principal, account_id, message_id)
    note = f"Deleted for good: {entry.subject or 'the message'} ({entry.signature})."
    return redirect(request, f"/accounts/{account_id}/quarantine", info, ("success", note))
