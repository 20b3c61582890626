"""Who is calling, and what each route allows: every route declares one `Access`.

- The API (`/api/v1`) authenticates with ``Authorization: Bearer mh_…`` API keys.
- The pages authenticate with a session cookie (HttpOnly, SameSite=Lax, Secure unless the
  setting ``web.cookie_secure`` is off); every unsafe request carries the session's CSRF
  token, as form field ``csrf_token`` or header ``X-CSRF-Token`` (htmx).

A route declares its access with a dependency made by `api_access()` / `page_access()` /
`public()`; a test walks every route and fails on one without. Finer checks (which account,
which user) are the services' job: they answer NotFound for records out of reach.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData

from mailhaul.bootstrap import App
from mailhaul.domain.access import Principal, Role
from mailhaul.services.users import SessionInfo

SESSION_COOKIE = "mailhaul_session"
LOGIN_CSRF_COOKIE = "mailhaul_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
ACCESS_MARK = "__mailhaul_access__"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Access(StrEnum):
    """What a route requires of its caller."""

    PUBLIC = "public"  # anyone (login page, health, static files)
    USER = "user"  # any signed-in role; the services scope what it sees
    MANAGER = "manager"  # admin or domain admin (users of their domains)
    ADMIN = "admin"  # admin only (settings, system status)

    def allows(self, principal: Principal) -> bool:
        """Whether ``principal`` passes this check."""
        if self is Access.ADMIN:
            return principal.role is Role.ADMIN
        if self is Access.MANAGER:
            return principal.role in (Role.ADMIN, Role.DOMAIN_ADMIN)
        return True

    def refusal(self, what: str, principal: Principal) -> str:
        """Why ``principal`` may not use ``what`` (a page, this request), in the roles' names."""
        who = {
            Access.ADMIN: "an admin",
            Access.MANAGER: "an admin or a domain admin",
        }.get(self, "a signed-in user")
        role = {Role.ADMIN: "an admin", Role.DOMAIN_ADMIN: "a domain admin"}.get(
            principal.role, "a user"
        )
        return f"{what} is for {who}; you are signed in as {role}"


class NotAuthenticated(Exception):
    """No valid session or API key: the API answers 401, a page redirects to the login."""

    def __init__(self, api: bool) -> None:
        super().__init__("sign in first" if not api else "a valid API key is needed")
        self.api = api


class AccessDenied(Exception):
    """The caller's role does not allow this route (403)."""


class CsrfFailure(Exception):
    """An unsafe page request without the session's CSRF token (403)."""


def app_of(request: Request) -> App:
    """The wired application behind the HTTP app."""
    app = request.app.state.mailhaul
    assert isinstance(app, App)
    return app


def _mark(func: Callable[..., Any], access: Access) -> Callable[..., Any]:
    setattr(func, ACCESS_MARK, access)
    return func


def access_of(dependency: Any) -> Access | None:
    """The `Access` a dependency declares, or None for an ordinary dependency."""
    value = getattr(dependency, ACCESS_MARK, None)
    return value if isinstance(value, Access) else None


# --- the API: Bearer keys -----------------------------------------------------------------
def api_principal(request: Request) -> Principal:
    """The principal of the request's API key; NotAuthenticated when missing or unknown."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise NotAuthenticated(api=True)
    principal = app_of(request).users.principal_for_key(secret.strip())
    if principal is None:
        raise NotAuthenticated(api=True)
    request.state.principal = principal
    return principal


def api_access(access: Access) -> Callable[[Request], Principal]:
    """A dependency for an API route: the caller's principal, checked against ``access``."""

    def dependency(request: Request) -> Principal:
        principal = api_principal(request)
        if not access.allows(principal):
            raise AccessDenied(access.refusal("this request", principal))
        return principal

    return _mark(dependency, access)


# --- the pages: session cookies and CSRF ----------------------------------------------------
_UNREAD = object()  # the session cookie has not been looked up yet for this request


def page_session(request: Request) -> SessionInfo | None:
    """The request's session, or None."""
    cached = getattr(request.state, "session_info", _UNREAD)
    if cached is not _UNREAD:
        return cached if isinstance(cached, SessionInfo) else None
    token = request.cookies.get(SESSION_COOKIE, "")
    info = app_of(request).users.session(token) if token else None
    request.state.session_info = info
    return info


async def _check_csrf(request: Request, expected: str) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form: FormData = await request.form()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailure("the form expired or did not come from this site: reload and retry")


def page_access(access: Access) -> Callable[[Request], Any]:
    """A dependency for a page: the signed-in session, role-checked, CSRF-checked."""

    async def dependency(request: Request) -> SessionInfo:
        info = page_session(request)
        if info is None:
            raise NotAuthenticated(api=False)
        await _check_csrf(request, info.csrf_token)
        if not access.allows(info.principal):
            raise AccessDenied(access.refusal("this page", info.principal))
        return info

    return _mark(dependency, access)


def public() -> Callable[[], None]:
    """A dependency declaring a route open to anyone."""

    def dependency() -> None:
        return None

    return _mark(dependency, Access.PUBLIC)


async def check_login_csrf(request: Request, form: FormData) -> None:
    """The login form's double-submit token: the form field must equal the cookie."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    value = form.get(CSRF_FIELD, "")
    sent = value if isinstance(value, str) else ""
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise CsrfFailure("the login form expired: reload the page and sign in again")


def new_login_csrf() -> str:
    """A token for the login form (and its cookie)."""
    return secrets.token_urlsafe(24)


# --- login rate limit ----------------------------------------------------------------------
@dataclass
class LoginThrottle:
    """At most ``limit`` failed logins per ``window`` seconds per login name and per client
    address; further attempts are refused until the window passes (in this process)."""

    limit: int = 5
    window: float = 300.0

    def __post_init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, login: str, client: str, now: float | None = None) -> float:
        """Seconds until another attempt is allowed; 0 when one is allowed now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [
                times[0] + self.window - now
                for key in (f"login:{login.lower()}", f"client:{client}")
                if len(times := self._recent(key, now)) >= self.limit
            ]
        return max(waits, default=0.0)

    def failed(self, login: str, client: str, now: float | None = None) -> None:
        """Count a failed attempt."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in (f"login:{login.lower()}", f"client:{client}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # forget the idle ones
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, login: str) -> None:
        """Forget a login's failures after it signed in."""
        with self._lock:
            self._failures.pop(f"login:{login.lower()}", None)
