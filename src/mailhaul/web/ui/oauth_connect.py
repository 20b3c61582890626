"""Connecting an OAuth2 account from its page: **Connect** sends the user on to the
provider's consent page (authorization code with PKCE, S256; a page that refreshes to it, as
the pages' CSP allows forms to post only to mailhaul) and back to ``/oauth/callback``, with a
``state`` good for one callback of the same user; a provider without an authorization URL
(or whose consent page cannot send the browser back) gets the device flow: the page shows the
code and turns "connected" without a reload once the user has approved it."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mailhaul.domain.errors import MailhaulError
from mailhaul.domain.oauth import Grant
from mailhaul.domain.options import SignInMethod
from mailhaul.services.pending_connects import PendingAuthorization
from mailhaul.services.users import SessionInfo
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import Form, redirect, render, text

router = APIRouter(route_class=PageRoute)
SignedIn = Annotated[SessionInfo, Depends(page_access(Access.USER))]

HTMX_STOP_POLLING = 286  # htmx stops an `every Ns` trigger on this status


@router.post("/accounts/{account_id:int}/connect")
def connect(request: Request, account_id: int, info: SignedIn, form: Form) -> Response:
    """Start connecting: the consent page, or the device flow's code (``device=1``)."""
    app = app_of(request)
    account = app.account_access.get(info.principal, account_id)
    back = f"/accounts/{account_id}"
    if account.spec.sign_in is not SignInMethod.OAUTH2 or account.spec.oauth_provider_id is None:
        return redirect(request, back, info, ("error", "This account signs in with a password."))
    try:
        endpoint = app.oauth_providers.endpoint(account.spec.oauth_provider_id)
        provider = endpoint.provider
        if provider.grant is Grant.CLIENT_CREDENTIALS:
            app.sign_in.connected(account, endpoint.client_credentials())
            return redirect(request, back, info, ("success", "Connected: fetching now."))
        if provider.endpoints.authorize_url and not text(form, "device"):
            redirect_uri = str(request.url_for("oauth_callback"))
            consent = endpoint.authorization(redirect_uri)
            pending = PendingAuthorization(
                account.id, info.principal.login, consent.code_verifier, redirect_uri
            )
            app.pending_authorizations.add(consent.state, pending)
            # A page that moves on by itself (meta refresh, no script): a redirect answering
            # the form would break the pages' CSP (form-action 'self') for another origin.
            return render(
                request,
                "account_consent.html",
                info,
                active_nav="accounts",
                account=account,
                provider=provider.name,
                consent_url=consent.url,
            )
        device = app.pending_connects.start(account)
    except MailhaulError as exc:
        return redirect(request, back, info, ("error", f"Not connected: {exc}"))
    return render(
        request,
        "account_connect.html",
        info,
        active_nav="accounts",
        account=account,
        device=device,
        expires_in=max(int(device.expires_at - time.time()), 0),
    )


@router.get("/accounts/{account_id:int}/connect/state")
def connect_state(request: Request, account_id: int, info: SignedIn) -> Response:
    """The device flow's progress (polled by the connect page): connected or waiting."""
    status = app_of(request).account_access.account_status(info.principal, account_id)
    connected = status.sign_in_problem is None
    return render(
        request,
        "_connect_state.html",
        info,
        account_id=account_id,
        connected=connected,
        status_code=HTMX_STOP_POLLING if connected else 200,
    )


@router.get("/oauth/callback", name="oauth_callback")
def callback(
    request: Request, info: SignedIn, code: str = "", state: str = "", error: str = ""
) -> Response:
    """Where the provider sends the browser back: keep the tokens, show the account."""
    app = app_of(request)
    pending = app.pending_authorizations.take(state[:200], info.principal.login)
    if pending is None:
        message = "This sign-in has expired or was started elsewhere: press Connect again."
        return redirect(request, "/accounts", info, ("error", message))
    back = f"/accounts/{pending.account_id}"
    account = app.account_access.get(info.principal, pending.account_id)
    if error or not code:
        said = "".join(ch for ch in error[:100] if ch.isalnum() or ch in "_-") or "no code"
        return redirect(request, back, info, ("error", f"Not connected: the provider said {said}."))
    provider_id = account.spec.oauth_provider_id
    if provider_id is None:
        return redirect(request, back, info, ("error", "This account signs in with a password."))
    try:
        endpoint = app.oauth_providers.endpoint(provider_id)
        tokens = endpoint.exchange_code(code[:4096], pending.redirect_uri, pending.code_verifier)
        app.sign_in.connected(account, tokens)
    except MailhaulError as exc:
        return redirect(request, back, info, ("error", f"Not connected: {exc}"))
    return redirect(request, back, info, ("success", "Connected: the account is fetched now."))
