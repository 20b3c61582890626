"""Who may open or post what: every server-rendered page route for every kind of caller.

The callers, each signed in through the login form (a session cookie): an admin, the domain
admin of the account's domain, a domain admin of another domain, the account's owner, another
user of the same domain, and nobody (no session). Unsafe requests carry the session's CSRF
token. A signed-out visitor is sent to ``/login?next=…`` (303); a role the route does not
allow gets 403; a record out of the caller's reach gets 404, exactly as a missing one does;
everyone else gets the route's own answer. A refused request changes nothing in the database,
and so does a request without the CSRF token, even from a caller who would be allowed.

`ROUTES` lists every page route; a page added to the app without a row here fails
`test_the_matrix_covers_every_page_route`.
"""

from __future__ import annotations

import io
import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import quote

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import insert, select, update
from starlette.testclient import TestClient

from mailhaul.adapters.db import tables
from mailhaul.adapters.db.quarantine import QuarantinedMessage
from mailhaul.bootstrap import App
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.domain.scheduling import RunResult
from mailhaul.web.app import create_app
from mailhaul.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Access, access_of, new_login_csrf
from support.api import PASSWORD, SYSTEM, Person, add_person, fake_dns, make_app
from support.fake_source import FakeServer
from support.pages import Browser

ACCOUNT_DOMAIN = "a.test"
OWNER = f"owner@{ACCOUNT_DOMAIN}"
STORED_SECRET = "matrix-stored-secret"
TYPED_SECRET = "matrix-typed-secret"
SETTINGS_DOMAIN = "c.test"  # has a per-domain delivery: its settings page answers 200
BASE_URL = "https://testserver"
REFERER = f"{BASE_URL}/accounts"  # the page a signed-out visitor's form was posted from
MISSING_ID = 999999
# Routes outside the pages: the API (its own matrix), static files, the exporter, health.
NOT_PAGES = ("/api/v1", "/static", "/metrics", "/healthz")


@dataclass
class Targets:
    """The records a request may touch: an account of OWNER, a plain user of a.test, and an
    API key of OWNER."""

    account_id: int
    user_id: int
    key_id: int
    account_username: str
    user_login: str
    run_id: int = 0
    message_id: int = 0  # a quarantined message of the account


@dataclass
class World:
    """One app for the module: its people, a browser each (and one signed out)."""

    app: App
    http: FastAPI
    people: dict[str, Person]
    browsers: dict[str, Browser]
    sessions: dict[str, str]  # caller → session cookie token
    shared: Targets  # for the requests that change nothing
    serial: Iterator[int] = field(default_factory=itertools.count)

    def sign_in(self, caller: str) -> None:
        """A new session for ``caller``, through the login form."""
        browser = self.browsers[caller]
        browser.client.cookies.clear()
        assert browser.login(self.people[caller].name, PASSWORD).status_code == 303
        self.sessions[caller] = browser.client.cookies[SESSION_COOKIE]

    def browser(self, caller: str) -> Browser:
        """``caller``'s browser holding exactly their session cookie (a request before may
        have signed someone in or out)."""
        browser = self.browsers[caller]
        browser.client.cookies.clear()
        if caller in self.sessions:
            browser.client.cookies.set(SESSION_COOKIE, self.sessions[caller])
        return browser


@dataclass(frozen=True)
class Call:
    """One request of the matrix: who sends it, about which records."""

    world: World
    caller: str
    person: Person | None
    browser: Browser
    targets: Targets

    @property
    def mailbox(self) -> str:
        """An address the caller may own accounts for (anonymous: the owner's)."""
        return self.person.mailbox if self.person else OWNER

    @property
    def domain(self) -> str:
        return self.person.domain if self.person else ACCOUNT_DOMAIN


Body = Callable[[Call], dict[str, str]]


@dataclass(frozen=True)
class RouteCase:
    """What a route needs and answers: its access, the record in its path, its success
    status (``signed_in_ok``: a public route's answer to a signed-in caller), a form body
    (built before the request: it may prepare the records), whether success ends the
    caller's session, and whether it changes anything stored."""

    access: Access
    target: str  # "" (none), "account", "user" or "key"
    ok: int
    body: Body | None = None
    signed_in_ok: int | None = None
    ends_session: bool = False
    changes: bool = True  # whether an unsafe request that succeeds changes stored rows


def _account_form(call: Call, owner: str, password: str) -> dict[str, str]:
    return {
        "owner": owner,
        "protocol": "pop3",
        "security": "ssl",
        "host": "mail.example.net",
        "port": "",
        "username": f"typed{next(call.world.serial)}",
        "password": password,
        "folders": "INBOX",
        "verify_cert": "on",
        "active": "on",
        "interval": "",
        "max_size": "",
        "deliver_to": "",
    }


def _new_account(call: Call) -> dict[str, str]:
    return _account_form(call, call.mailbox, TYPED_SECRET)


def _edited_account(call: Call) -> dict[str, str]:
    return _account_form(call, OWNER, "")  # an empty password keeps the stored one


def _login(call: Call) -> dict[str, str]:
    """The login form's double-submit token (cookie and field); the caller signs in as
    themselves (a signed-out visitor as the owner)."""
    token = new_login_csrf()
    call.browser.client.cookies.set(LOGIN_CSRF_COOKIE, token, path="/login")
    login = call.person.name if call.person else OWNER
    return {"login": login, "password": PASSWORD, "csrf_token": token, "next": ""}


def _disabled(call: Call) -> dict[str, str]:
    call.world.app.accounts.set_active(call.targets.account_id, False)
    return {}


def _paused(call: Call) -> dict[str, str]:
    accounts = tables.accounts
    with call.world.app.db.begin() as conn:
        paused = update(accounts).where(accounts.c.id == call.targets.account_id)
        conn.execute(paused.values(paused_reason="5 login failures in a row"))
    return {}


def _refused_message(call: Call) -> dict[str, str]:
    row = {
        "account_id": call.targets.account_id,
        "folder": "INBOX",
        "uidvalidity": 0,
        "uid": f"UID-{next(call.world.serial)}",
        "state": "refused",
        "destination": OWNER,
        "size": 10,
        "recorded_at": time.time(),
        "note": "552 5.2.2 mailbox full",
    }
    with call.world.app.db.begin() as conn:
        conn.execute(insert(tables.messages).values(row))
    return {"uid": ""}  # all of them


def _ticked(action: str) -> Body:
    """The account list's form with the target ticked (an empty action: the delete step)."""

    def body(call: Call) -> dict[str, str]:
        ticked = {"id": str(call.targets.account_id), "back": "/accounts"}
        return {**ticked, "action": action} if action else ticked

    return body


def _new_user(call: Call) -> dict[str, str]:
    login = f"new{next(call.world.serial)}@{call.domain}"
    return {"login": login, "role": "user", "domains": "", "password": "a-long-enough-password"}


def _same_password(_call: Call) -> dict[str, str]:
    return {"current": PASSWORD, "new_password": PASSWORD, "new_password_again": PASSWORD}


def _new_domain(call: Call) -> dict[str, str]:
    domain = f"d{next(call.world.serial)}.test"
    return {"domain": domain, "method": "lmtp", "lmtp": "127.0.0.1:24"}


def _stored_domain(call: Call) -> dict[str, str]:
    domain = f"r{next(call.world.serial)}.test"
    table = {"method": "lmtp", "lmtp": "127.0.0.1:24"}
    call.world.app.settings_admin.change(SYSTEM, {"delivery.domains": {domain: table}})
    return {"domain": domain}


ACCOUNT = "/accounts/{account_id:int}"
USER = "/users/{user_id:int}"
ROUTES: dict[tuple[str, str], RouteCase] = {
    ("GET", "/"): RouteCase(Access.USER, "", 303),
    ("GET", "/login"): RouteCase(Access.PUBLIC, "", 200, signed_in_ok=303),
    ("POST", "/login"): RouteCase(Access.PUBLIC, "", 303, _login),
    ("POST", "/logout"): RouteCase(Access.USER, "", 303, ends_session=True),
    ("GET", "/accounts"): RouteCase(Access.USER, "", 200),
    ("GET", "/accounts/rows"): RouteCase(Access.USER, "", 200),
    ("POST", "/accounts/bulk"): RouteCase(Access.USER, "account", 303, _ticked("disable")),
    ("POST", "/accounts/bulk/delete"): RouteCase(Access.USER, "account", 303, _ticked("")),
    ("GET", "/accounts/new"): RouteCase(Access.USER, "", 200),
    ("POST", "/accounts/new"): RouteCase(Access.USER, "", 303, _new_account),
    ("POST", "/accounts/new/test"): RouteCase(Access.USER, "", 200, _new_account, changes=False),
    ("GET", ACCOUNT): RouteCase(Access.USER, "account", 200),
    ("GET", ACCOUNT + "/live"): RouteCase(Access.USER, "account", 200),
    ("GET", ACCOUNT + "/edit"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/edit"): RouteCase(Access.USER, "account", 303, _edited_account),
    ("POST", ACCOUNT + "/test"): RouteCase(
        Access.USER, "account", 200, _edited_account, changes=False
    ),
    ("POST", ACCOUNT + "/fetch"): RouteCase(Access.USER, "account", 303),
    ("POST", ACCOUNT + "/enable"): RouteCase(Access.USER, "account", 303, _disabled),
    ("POST", ACCOUNT + "/disable"): RouteCase(Access.USER, "account", 303),
    ("POST", ACCOUNT + "/resume"): RouteCase(Access.USER, "account", 303, _paused),
    ("POST", ACCOUNT + "/retry"): RouteCase(Access.USER, "account", 303, _refused_message),
    # the target signs in with a password: Connect sends it back to its page saying so;
    # the device flow's state of an account without a sign-in problem is "connected" (286
    # stops htmx's polling); a callback without a known state goes back to the list
    ("POST", ACCOUNT + "/connect"): RouteCase(Access.USER, "account", 303, changes=False),
    ("GET", ACCOUNT + "/connect/state"): RouteCase(Access.USER, "account", 286),
    ("GET", "/oauth/callback"): RouteCase(Access.USER, "", 303),
    ("GET", ACCOUNT + "/runs"): RouteCase(Access.USER, "account", 200),
    ("GET", ACCOUNT + "/quarantine"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/quarantine/{message_id:int}/release"): RouteCase(
        Access.USER, "account", 303
    ),
    ("POST", ACCOUNT + "/quarantine/{message_id:int}/delete"): RouteCase(
        Access.USER, "account", 303
    ),
    ("GET", ACCOUNT + "/runs/{run_id:int}"): RouteCase(Access.USER, "account", 200),
    ("GET", ACCOUNT + "/delete"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/delete"): RouteCase(Access.USER, "account", 303),
    ("GET", "/users"): RouteCase(Access.MANAGER, "", 200),
    ("GET", "/users/new"): RouteCase(Access.MANAGER, "", 200),
    ("POST", "/users/new"): RouteCase(Access.MANAGER, "", 303, _new_user),
    ("GET", USER): RouteCase(Access.MANAGER, "user", 200),
    ("POST", USER): RouteCase(
        Access.MANAGER, "user", 303, lambda c: {"role": "user", "domains": "", "active": ""}
    ),
    ("GET", USER + "/delete"): RouteCase(Access.MANAGER, "user", 200),
    ("POST", USER + "/delete"): RouteCase(Access.MANAGER, "user", 303),
    ("POST", USER + "/keys"): RouteCase(Access.MANAGER, "user", 200, lambda c: {"name": "cron"}),
    ("POST", "/keys/{key_id:int}/revoke"): RouteCase(
        Access.USER, "key", 303, lambda c: {"back": "/me"}
    ),
    ("GET", "/me"): RouteCase(Access.USER, "", 200),
    ("POST", "/me/notices"): RouteCase(Access.USER, "", 303, lambda c: {"notices": "off"}),
    ("POST", "/me/keys"): RouteCase(Access.USER, "", 200, lambda c: {"name": "script"}),
    ("POST", "/me/password"): RouteCase(Access.USER, "", 303, _same_password, ends_session=True),
    ("GET", "/status"): RouteCase(Access.ADMIN, "", 200),
    ("GET", "/settings"): RouteCase(Access.ADMIN, "", 200),
    ("POST", "/settings"): RouteCase(
        Access.ADMIN, "", 303, lambda c: {"runs.keep_days": str(31 + next(c.world.serial))}
    ),
    ("GET", "/settings/domains/new"): RouteCase(Access.ADMIN, "", 200),
    ("GET", "/settings/domains/{name}"): RouteCase(Access.ADMIN, "", 200),
    ("POST", "/settings/domains"): RouteCase(Access.ADMIN, "", 303, _new_domain),
    ("POST", "/settings/domains/remove"): RouteCase(Access.ADMIN, "", 303, _stored_domain),
}

# Who reaches the records (an account and a key of owner@a.test, a plain user of a.test):
# everyone else gets 404.
REACH = {
    "account": {"admin", "domain_admin", "owner"},
    "user": {"admin", "domain_admin"},
    "key": {"admin", "domain_admin", "owner"},
}
PEOPLE = {
    "admin": ("admin", Role.ADMIN, ()),
    "domain_admin": ("boss@a.test", Role.DOMAIN_ADMIN, ("a.test",)),
    "foreign_domain_admin": ("boss@b.test", Role.DOMAIN_ADMIN, ("b.test",)),
    "owner": (OWNER, Role.USER, ()),
    "other_user": ("other@a.test", Role.USER, ()),
}
CALLERS = [*PEOPLE, "anonymous"]
UNSAFE = [route for route in ROUTES if route[0] != "GET"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_database: str | None) -> Iterator[World]:
    app = make_app(tmp_path_factory.mktemp("page-matrix") / "home", module_database)
    fake_dns(app)
    access = app.account_access
    access.connector = replace(access.connector, open_source=FakeServer().source)
    people = {
        caller: add_person(app, login, login, role, domains)  # name: the login
        for caller, (login, role, domains) in PEOPLE.items()
    }
    table = {"method": "lmtp", "lmtp": "127.0.0.1:24"}
    app.settings_admin.change(SYSTEM, {"delivery.domains": {SETTINGS_DOMAIN: table}})
    http = create_app(app)
    browsers = {caller: Browser(TestClient(http, base_url=BASE_URL)) for caller in CALLERS}
    serial = itertools.count()
    world = World(app, http, people, browsers, {}, fresh_targets_of(app, serial), serial)
    for caller in PEOPLE:
        world.sign_in(caller)
    yield world
    for browser in browsers.values():
        browser.client.close()
    app.db.dispose()


def fresh_targets_of(app: App, serial: Iterator[int]) -> Targets:
    username = f"target{next(serial)}"
    spec = AccountSpec(
        owner=OWNER,
        protocol=Protocol.POP3,
        host="mail.example.net",
        port=995,
        security=Security.SSL,
        username=username,
    )
    account = app.accounts.add(spec, STORED_SECRET)
    login = f"target{next(serial)}@{ACCOUNT_DOMAIN}"
    user = app.users.add(SYSTEM, login, Role.USER, "x" * 12)
    owner = app.users.by_login(SYSTEM, OWNER)
    key, _ = app.users.create_key(SYSTEM, owner.id, f"target key {next(serial)}")
    with app.db.begin() as conn:  # a finished run of the account, with its log
        run_id = app.run_store.start(conn, account.id, "schedule", time.time())
        app.run_store.finish(
            conn, run_id, result=RunResult.OK, finished_at=time.time(), fetched=0, size=0,
            deleted=0, skipped=0, error=None, log="a run's log\n",
        )  # fmt: skip
    return Targets(
        account.id, user.id, key.id, username, login, run_id, _quarantined(app, account.id)
    )


def _quarantined(app: App, account_id: int) -> int:
    """An infected message in the account's quarantine (its file and its row)."""
    raw = b"Subject: invoice\r\n\r\nan attachment\r\n"
    name = app.quarantine.box.store(account_id, b"", io.BytesIO(raw))
    entry = QuarantinedMessage(
        0, account_id, name, "INBOX", "1", "Eicar", "clamd", len(raw), "", "invoice", time.time()
    )
    with app.db.begin() as conn:
        return app.quarantine.rows.add(conn, entry)


def targets_for(world: World, method: str, case: RouteCase) -> Targets:
    """Fresh records for a request that may change them; the shared ones otherwise."""
    if method == "GET" or not case.target:
        return world.shared
    return fresh_targets_of(world.app, world.serial)


_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def path_of(template: str, targets: Targets | None) -> str:
    """The template with the targets' ids (None: ids that exist nowhere)."""
    values = {
        "account_id": targets.account_id if targets else MISSING_ID,
        "user_id": targets.user_id if targets else MISSING_ID,
        "key_id": targets.key_id if targets else MISSING_ID,
        "run_id": targets.run_id if targets else MISSING_ID,
        "message_id": targets.message_id if targets else MISSING_ID,
        "name": SETTINGS_DOMAIN,
    }
    return _PARAM.sub(lambda m: str(values[m.group(1)]), template)


def expected_status(case: RouteCase, caller: str) -> int:
    if case.access is Access.PUBLIC:
        signed_in = caller != "anonymous"
        return case.signed_in_ok if signed_in and case.signed_in_ok else case.ok
    if caller == "anonymous":
        return 303  # to the login
    login, role, domains = PEOPLE[caller]
    if not case.access.allows(Principal(0, login, role, frozenset(domains))):
        return 403
    if case.target and caller not in REACH[case.target]:
        return 404
    return case.ok


def snapshot(app: App) -> dict[str, list[tuple[object, ...]]]:
    """Every stored row a page could change (sessions too: a refused logout or password
    change must not end any)."""
    stored = (
        tables.accounts,
        tables.messages,
        tables.folders,
        tables.runs,
        tables.users,
        tables.sessions,
        tables.api_keys,
        tables.settings,
        tables.quarantine,
    )
    with app.db.begin() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
            for table in stored
        }


def send(
    browser: Browser, method: str, path: str, body: dict[str, str] | None, *, csrf: bool = True
) -> httpx.Response:
    """The request as the browser would send it (a form post carries the CSRF token)."""
    if method == "GET":
        return browser.get(path)
    headers = {"referer": REFERER}
    if csrf:
        return browser.post(path, body, headers=headers)
    return browser.client.request(
        method, path, data=body or {}, headers=headers, follow_redirects=False
    )


def declared_access(dependant: Dependant) -> set[Access]:
    found: set[Access] = set()
    stack = [dependant]
    while stack:
        item = stack.pop()
        access = access_of(item.call) if item.call is not None else None
        if access is not None:
            found.add(access)
        stack.extend(item.dependencies)
    return found


def page_routes(http: FastAPI) -> dict[tuple[str, str], Dependant]:
    """Every page route of the app (method, path) with its dependencies."""
    found: dict[tuple[str, str], Dependant] = {}
    for context in iter_route_contexts(http.routes):
        path = context.path or ""
        if any(path == prefix or path.startswith(prefix + "/") for prefix in NOT_PAGES):
            continue
        assert isinstance(context.original_route, APIRoute), f"{path}: not a FastAPI route"
        for method in context.methods or ():
            found[(method, path)] = context.dependant
    return found


@pytest.mark.parametrize(
    ("route", "caller"),
    [(route, caller) for route in ROUTES for caller in CALLERS],
    ids=[f"{m} {p} as {c}" for (m, p) in ROUTES for c in CALLERS],
)
def test_each_caller_gets_what_their_role_and_reach_allow(
    world: World, route: tuple[str, str], caller: str
) -> None:
    method, template = route
    case = ROUTES[route]
    targets = targets_for(world, method, case)
    path = path_of(template, targets)
    browser = world.browser(caller)
    call = Call(world, caller, world.people.get(caller), browser, targets)
    body = case.body(call) if case.body else None
    before = snapshot(world.app)
    response = send(browser, method, path, body)
    expected = expected_status(case, caller)
    assert response.status_code == expected, response.text
    refused = expected in (403, 404) or (caller == "anonymous" and case.access is not Access.PUBLIC)
    changed = snapshot(world.app) != before
    # a refused request (or a page view) changes nothing; an allowed action does its work
    assert changed == (not refused and method != "GET" and case.changes)
    if refused:
        assert targets.account_username not in response.text
        assert targets.user_login not in response.text
    if caller == "anonymous" and case.access is not Access.PUBLIC:
        came_from = path if method == "GET" else "/accounts"
        assert response.headers["location"] == f"/login?next={quote(came_from, safe='')}"
    elif expected == 303:
        assert not response.headers["location"].startswith("/login?next=")
    if expected == 404:
        # the same answer as for a record that does not exist at all
        missing = send(world.browser(caller), method, path_of(template, None), body)
        assert (missing.status_code, missing.text) == (404, response.text)
    assert STORED_SECRET not in response.text
    assert TYPED_SECRET not in response.text
    if case.ends_session and not refused:
        world.sign_in(caller)


@pytest.mark.parametrize("route", UNSAFE, ids=[f"{m} {p}" for (m, p) in UNSAFE])
def test_an_unsafe_request_without_the_csrf_token_is_refused(
    world: World, route: tuple[str, str]
) -> None:
    method, template = route
    case = ROUTES[route]
    caller = "admin"  # allowed everywhere, reaches every record
    assert expected_status(case, caller) == case.ok
    targets = targets_for(world, method, case)
    path = path_of(template, targets)
    for token in (None, "forged-token"):
        browser = world.browser(caller)
        call = Call(world, caller, world.people[caller], browser, targets)
        body = case.body(call) if case.body else {}
        body.pop("csrf_token", None)
        if token is not None:
            body["csrf_token"] = token
        before = snapshot(world.app)
        response = send(browser, method, path, body, csrf=False)
        assert response.status_code == 403, (token, response.text)
        assert "expired" in response.text
        assert snapshot(world.app) == before  # nothing changed
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_the_matrix_covers_every_page_route(world: World) -> None:
    assert set(page_routes(world.http)) == set(ROUTES)


def test_each_page_route_declares_the_access_the_matrix_expects(world: World) -> None:
    for route, dependant in page_routes(world.http).items():
        assert declared_access(dependant) == {ROUTES[route].access}, route
