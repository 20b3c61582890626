"""How page routes answer failures: a route class, so the mounted `/api/v1` is untouched.

The page routers use `PageRoute`, which turns the errors of the access check and the
services into pages:

- NotAuthenticated → 303 to ``/login?next=…`` (htmx: ``HX-Redirect``)
- AccessDenied, Forbidden, CsrfFailure → 403 page
- NotFound → 404 page (an account out of reach looks exactly like a missing one)
- ConfigError (a FieldError a form did not catch, bad input) → 400 page

An htmx request gets its error as a fragment in the layout's ``#htmx-errors`` box instead.
Unknown URLs outside ``/api/`` get the 404 page when a browser asks (`not_found_handler`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailhaul.domain.access import Forbidden
from mailhaul.domain.errors import ConfigError, NotFound
from mailhaul.domain.validation import FieldError
from mailhaul.web.auth import AccessDenied, CsrfFailure, NotAuthenticated
from mailhaul.web.ui.templating import is_htmx, local_path, redirect, render, session_of

logger = logging.getLogger(__name__)
_FIELD_PREFIX = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)


def field_error(exc: Exception, fields: Iterable[str]) -> tuple[str | None, str]:
    """(the form field an error is about, or None; the message to show).

    A FieldError names its field; the services' Forbidden and ConfigError messages start
    with ``field: `` where they are about one (``owner: … is outside your domains``).
    """
    if isinstance(exc, FieldError):
        return exc.field, exc.message
    match = _FIELD_PREFIX.match(str(exc))
    if match and match.group(1) in set(fields):
        return match.group(1), match.group(2)
    return None, str(exc)


def _login_url(request: Request) -> str:
    if is_htmx(request):
        current = urlsplit(request.headers.get("hx-current-url", ""))
        target = current.path + (f"?{current.query}" if current.query else "")
    elif request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        target = urlsplit(request.headers.get("referer", "")).path
    target = local_path(target, "")
    return "/login" + (f"?{urlencode({'next': target})}" if target else "")


def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    """The error page (or, for htmx, a fragment for the layout's error box)."""
    info = session_of(request)
    if is_htmx(request):
        return render(
            request,
            "_htmx_error.html",
            info,
            message=message,
            headers={"HX-Retarget": "#htmx-errors", "HX-Reswap": "innerHTML"},
        )
    return render(
        request, "error.html", info, status_code=status_code, title=title, message=message
    )


def answer_error(request: Request, exc: Exception) -> Response | None:
    """The page for an error a page route raised, or None for one that is not ours."""
    if isinstance(exc, NotAuthenticated):
        url = _login_url(request)
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": url})
        return redirect(request, url)
    if isinstance(exc, CsrfFailure):
        return error_page(request, 403, "Form expired", str(exc))
    if isinstance(exc, AccessDenied | Forbidden):
        return error_page(request, 403, "Not allowed", str(exc))
    if isinstance(exc, NotFound):
        return error_page(request, 404, "Not found", "There is no such page or record.")
    if isinstance(exc, ConfigError):
        return error_page(request, 400, "Cannot do that", str(exc))
    return None


class PageRoute(APIRoute):
    """A route whose failures become pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (
                NotAuthenticated,
                CsrfFailure,
                AccessDenied,
                Forbidden,
                NotFound,
                ConfigError,
            ) as exc:
                response = answer_error(request, exc)
                if response is None:  # pragma: no cover (every caught type is answered)
                    raise
                return response

        return page_handler


async def not_found_handler(request: Request, exc: Exception) -> Response:
    """A browser's 404 for an unknown page; FastAPI's own answer for everything else."""
    assert isinstance(exc, StarletteHTTPException)
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status_code == 404 and wants_html and not request.url.path.startswith("/api/"):
        # the session lookup (for the layout's menu) reads the database: not on the loop
        return await run_in_threadpool(
            error_page, request, 404, "Not found", "There is no such page or record."
        )
    return await http_exception_handler(request, exc)
