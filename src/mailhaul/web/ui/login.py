"""Signing in and out.

The login form carries a double-submit CSRF token (cookie + field: there is no session yet);
failed attempts are counted per login and per client address by `LoginThrottle`, which
refuses further tries for a while. The session cookie is HttpOnly, SameSite=Lax, path /,
and Secure unless ``web.cookie_secure`` is off.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mailhaul.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    CsrfFailure,
    LoginThrottle,
    app_of,
    check_login_csrf,
    new_login_csrf,
    page_access,
    public,
)
from mailhaul.web.ui.routing import PageRoute
from mailhaul.web.ui.templating import (
    Form,
    cookie_secure,
    local_path,
    raw_text,
    redirect,
    render,
    session_of,
    text,
)

router = APIRouter(route_class=PageRoute)
LOGIN_CSRF_MAX_AGE = 3600
MAX_LOGIN = 320


def throttle_of(request: Request) -> LoginThrottle:
    """The process's login throttle (made by `install_pages`)."""
    throttle = request.app.state.login_throttle
    assert isinstance(throttle, LoginThrottle)
    return throttle


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_form(
    request: Request,
    next_url: str,
    *,
    login: str = "",
    error: str = "",
    notice: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        headers=headers,
        login_csrf=token,
        next_url=next_url,
        login=login,
        error=error,
        notice=notice,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
    )
    return response


@router.get("/", dependencies=[Depends(page_access(Access.USER))])
def home(request: Request) -> Response:
    """The start page is the account list."""
    return redirect(request, "/accounts")


@router.get("/login", dependencies=[Depends(public())])
def login_page(
    request: Request,
    next_url: Annotated[str, Query(alias="next")] = "",
    out: str = "",
    changed: str = "",
) -> Response:
    """The sign-in form (signed-in visitors go straight on)."""
    target = local_path(next_url, "")
    if session_of(request) is not None:
        return redirect(request, target or "/accounts")
    notice = "You are signed out." if out else ""
    if changed:
        notice = "Your password was changed: sign in with the new one."
    return _login_form(request, target, notice=notice)


@router.post("/login", dependencies=[Depends(public())])
async def login(request: Request, form: Form) -> Response:
    """Check the password; on success start a session and go to ``next``."""
    target = local_path(text(form, "next"), "")
    login_name = text(form, "login")[:MAX_LOGIN]
    try:
        await check_login_csrf(request, form)
    except CsrfFailure as exc:
        return _login_form(request, target, login=login_name, error=str(exc), status_code=403)
    throttle = throttle_of(request)
    client = _client(request)
    wait = throttle.retry_after(login_name, client)
    if wait > 0:
        return _too_many(request, target, login_name, wait)
    users = app_of(request).users
    user = await run_in_threadpool(users.authenticate, login_name, raw_text(form, "password"))
    if user is None:
        throttle.failed(login_name, client)
        wait = throttle.retry_after(login_name, client)
        if wait > 0:
            return _too_many(request, target, login_name, wait)
        return _login_form(
            request,
            target,
            login=login_name,
            error="Wrong login or password.",
            status_code=401,
        )
    throttle.succeeded(login_name)
    token, _csrf = await run_in_threadpool(users.start_session, user)
    response = redirect(request, target or "/accounts")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(users.session_ttl),
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", secure=cookie_secure(request))
    return response


def _too_many(request: Request, target: str, login_name: str, wait: float) -> Response:
    seconds = max(1, int(wait + 0.999))
    return _login_form(
        request,
        target,
        login=login_name,
        error=f"Too many failed sign-in attempts: try again in {seconds} s.",
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


@router.post("/logout", dependencies=[Depends(page_access(Access.USER))])
def logout(request: Request) -> Response:
    """End the session (the CSRF check keeps other sites from signing anyone out)."""
    app_of(request).users.end_session(request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(request, "/login?out=1")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=cookie_secure(request))
    return response
