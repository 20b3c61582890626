"""The server-rendered pages (Jinja2 templates, a little htmx), and their static files.

Modules: `templating` (rendering, flash messages, form helpers), `routing` (how page routes
answer errors), `login`, `account_list` (the list: sorting, refresh, acting on several
accounts), `accounts` (an account's page, fetch now), `account_form` (add,
edit, test connection; `account_values` turns the form into an account), `users` (users,
one's own password, API keys), `admin` (status; read-only settings), `settings_form` (the
editable settings, per-domain delivery). Every route declares its access
with `page_access(...)` or `public()`.

| route | access |
|---|---|
| GET /login, POST /login | public |
| GET /, POST /logout, /accounts…, /me…, POST /keys/{id}/revoke | user (services scope it) |
| /users… | manager (admin, domain admin) |
| /settings…, GET /status | admin |
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from mailhaul.web.auth import LoginThrottle
from mailhaul.web.ui import (
    account_form,
    account_list,
    accounts,
    admin,
    login,
    oauth_connect,
    quarantine,
    run_history,
    settings_form,
    users,
)
from mailhaul.web.ui.routing import not_found_handler
from mailhaul.web.ui.templating import TEMPLATES

STATIC = TEMPLATES.parent / "static"


def install_pages(api: FastAPI) -> None:
    """Add the pages and ``/static`` to the main app."""
    api.state.login_throttle = LoginThrottle()
    pages = (
        login,
        account_form,
        account_list,
        accounts,
        run_history,
        quarantine,
        oauth_connect,
        users,
        admin,
        settings_form,
    )
    for module in pages:
        # The routes themselves, not include_router(): FastAPI 0.165 would wrap them in one
        # opaque entry, and the check that every route declares its access walks api.routes.
        api.router.routes.extend(module.router.routes)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    api.add_exception_handler(StarletteHTTPException, not_found_handler)
