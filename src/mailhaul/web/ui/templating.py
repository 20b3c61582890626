"""Rendering pages: the Jinja2 environment, the layout's variables, flash messages, forms.

Autoescape is on for every template and undefined variables raise (StrictUndefined). A flash
message survives one redirect in a cookie signed with the session's CSRF token (so nobody
but the session's own pages can plant one), and is dropped once shown.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.datastructures import FormData

from mailhaul.domain.units import human_bytes
from mailhaul.services.users import SessionInfo
from mailhaul.web.auth import app_of, page_session

TEMPLATES = Path(__file__).parent / "templates"
FLASH_COOKIE = "mailhaul_flash"
FLASH_KINDS = frozenset({"success", "error", "warning", "info"})
MAX_FLASH = 2000
Flash = tuple[str, str]


def utc_text(timestamp: float) -> str:
    """A time as ``2026-11-22 05:31:00 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def iso(timestamp: float | None) -> str:
    """A time for a ``<time datetime>`` attribute."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def when(timestamp: float | None) -> Markup | str:
    """A time as ``<time datetime="…Z" title="… UTC">2026-11-22 05:31:00 UTC</time>``
    ("—" for none); static/mailhaul.js shows it in the browser's time zone."""
    if timestamp is None:
        return "—"
    text = utc_text(timestamp)
    return Markup('<time datetime="{}" title="{}" data-time="when">{}</time>').format(
        iso(timestamp), text, text
    )


def span(seconds: float) -> str:
    """A duration in words: ``25 ms``, ``45 s``, ``3 min``, ``2 h 5 min``, ``3 d``."""
    seconds = abs(seconds)
    if seconds < 0.0005:
        return "0 s"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


def relative_text(timestamp: float, now: float | None = None) -> str:
    """``3 min ago`` / ``in 4 min`` / ``now``."""
    delta = timestamp - (time.time() if now is None else now)
    if abs(delta) < 1:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"


def relative(timestamp: float | None, now: float | None = None) -> Markup | str:
    """``<time datetime="…Z" title="… UTC">3 min ago</time>`` (``in 4 min``, ``now``);
    static/mailhaul.js keeps the words current and puts the local time in the title."""
    if timestamp is None:
        return ""
    return Markup('<time datetime="{}" title="{}" data-time="relative">{}</time>').format(
        iso(timestamp), utc_text(timestamp), relative_text(timestamp, now)
    )


def size(value: int | None) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``100 MiB``."""
    return "—" if value is None else human_bytes(value)


def number(value: int) -> str:
    """``10000`` → ``10,000``."""
    return f"{value:,}"


def state_class(state: str) -> str:
    """The CSS badge class of an account state (``login failed`` → ``badge-login-failed``)."""
    return "badge-" + "-".join(state.split())


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, iso=iso, relative=relative, size=size, number=number, span=span)
    env.filters["state_class"] = state_class
    env.globals["urlencode"] = urlencode
    return env


ENV = _environment()


# --- flash messages ---------------------------------------------------------------------
def _sign(payload: str, key: str) -> str:
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]


def _flash_cookie(messages: Sequence[Flash], key: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(list(messages)).encode()).decode()
    return f"{payload}.{_sign(payload, key)}"


def _read_flash(request: Request, info: SessionInfo | None) -> list[Flash]:
    raw = request.cookies.get(FLASH_COOKIE, "")
    if not raw or info is None or len(raw) > 4 * MAX_FLASH:
        return []
    payload, _, signature = raw.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _sign(payload, info.csrf_token).encode()):
        return []
    try:
        items = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (ValueError, binascii.Error):
        return []
    if not isinstance(items, list):
        return []
    return [
        (str(kind), str(message))
        for kind, message in (item for item in items if isinstance(item, list) and len(item) == 2)
        if kind in FLASH_KINDS
    ]


def cookie_secure(request: Request) -> bool:
    """Whether cookies carry the Secure flag (setting ``web.cookie_secure``)."""
    return app_of(request).settings.web_cookie_secure


# --- responses ----------------------------------------------------------------------------
def render(
    request: Request,
    template: str,
    info: SessionInfo | None,
    *,
    status_code: int = 200,
    flash: Sequence[Flash] = (),
    active_nav: str = "",
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page (or fragment) rendered with the layout's variables; never cached."""
    shown = [*_read_flash(request, info), *flash]
    html = ENV.get_template(template).render(
        request=request,
        user=info.user if info else None,
        actor=info.principal if info else None,
        csrf_token=info.csrf_token if info else "",
        flash=shown,
        active_nav=active_nav,
        now=time.time(),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.headers["cache-control"] = "no-store"
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/", secure=cookie_secure(request))
    return response


def redirect(
    request: Request, url: str, info: SessionInfo | None = None, *flash: Flash
) -> RedirectResponse:
    """A 303 to ``url``; ``flash`` messages are shown on the next page of this session."""
    response = RedirectResponse(url, status_code=303)
    if flash and info is not None:
        messages = [(kind, message[:MAX_FLASH]) for kind, message in flash]
        response.set_cookie(
            FLASH_COOKIE,
            _flash_cookie(messages, info.csrf_token),
            max_age=120,
            path="/",
            httponly=True,
            samesite="lax",
            secure=cookie_secure(request),
        )
    return response


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it wants a fragment, not a page)."""
    return request.headers.get("hx-request") == "true"


def local_path(target: str, default: str = "/accounts") -> str:
    """``target`` when it is a path on this site (``/accounts?page=2``), else ``default``.

    Refuses absolute and scheme-relative URLs (``//evil.example``, ``/\\evil.example``) and
    control characters, so a ``next`` parameter cannot send anyone off-site.
    """
    if (
        not target
        or len(target) > 2000
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(ord(ch) < 32 or ch == "\\" for ch in target)
    ):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# --- forms --------------------------------------------------------------------------------
async def read_form(request: Request) -> FormData:
    """The request's form (parsed once; the CSRF check has usually read it already)."""
    return await request.form()


Form = Annotated[FormData, Depends(read_form)]


def text(form: FormData, name: str, default: str = "") -> str:
    """A text field, stripped of surrounding blanks (a file upload counts as missing)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def raw_text(form: FormData, name: str) -> str:
    """A text field as sent (passwords: blanks are significant)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def checked(form: FormData, name: str) -> bool:
    """Whether a checkbox was ticked."""
    return form.get(name) in ("on", "1", "true", "yes")


def session_of(request: Request) -> SessionInfo | None:
    """The request's session (already resolved by the route's access check), or None."""
    return page_session(request)
