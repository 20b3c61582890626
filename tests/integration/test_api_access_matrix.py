"""Who may call what: every `/api/v1` route for every kind of caller.

The callers: an admin, the domain admin of the account's domain, a domain admin of another
domain, the account's owner, another user of the same domain, nobody (no key), a revoked key
and an unknown key. A record out of the caller's reach answers 404, exactly as a missing one
(never 403); a role the route does not allow answers 403; no valid key answers 401.

`ROUTES` lists every API route; a route added to the app without a row here fails
`test_the_matrix_covers_every_api_route`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Mount
from starlette.testclient import TestClient

from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.oauth import Preset
from mailhaul.domain.options import Protocol, Security
from mailhaul.services.oauth_providers import ProviderRequest
from mailhaul.web.auth import Access, access_of
from support.api import SYSTEM, Api, Person, add_person, client_for, error_of, fake_dns, make_app
from support.fake_source import FakeServer

ACCOUNT_DOMAIN = "a.test"
OWNER = f"owner@{ACCOUNT_DOMAIN}"


@dataclass
class World:
    """One app for the module: people with keys, and the HTTP client."""

    app: App
    http: FastAPI
    client: TestClient
    people: dict[str, Person]
    revoked_key: str
    serial: Iterator[int] = field(default_factory=itertools.count)


@dataclass
class Targets:
    """Fresh records for one request: an account of OWNER, a user of a.test and its key."""

    account_id: int
    user_id: int
    key_id: int
    provider: str


Body = Callable[[World, Person | None], Any]


@dataclass(frozen=True)
class RouteCase:
    """What a route needs and gives: its access, the record in its path, a body."""

    access: Access
    target: str  # "" (none), "account", "user" or "key"
    ok: int
    body: Body | None = None


def _account_body(world: World, who: Person | None) -> dict[str, Any]:
    return {
        "owner": who.mailbox if who else OWNER,
        "host": "mail.example.net",
        "username": f"u{next(world.serial)}",
        "password": "matrix-source-secret",
    }


def _new_user(world: World, who: Person | None) -> dict[str, Any]:
    domain = who.domain if who else ACCOUNT_DOMAIN
    return {"login": f"new{next(world.serial)}@{domain}", "password": "a-long-enough-password"}


def _new_provider(world: World, _who: Person | None) -> dict[str, Any]:
    return {"name": f"p{next(world.serial)}", "preset": "google", "client_id": "c"}


def _replace_body(world: World, _who: Person | None) -> dict[str, Any]:
    return {
        "protocol": "imap",  # another server than the stored one's: the password comes again
        "host": "mail.example.net",
        "username": "renamed",
        "password": "matrix-source-secret",
    }


ACCOUNT = "/accounts/{account_id}"
ROUTES: dict[tuple[str, str], RouteCase] = {
    ("GET", "/openapi.json"): RouteCase(Access.PUBLIC, "", 200),
    ("GET", "/accounts"): RouteCase(Access.USER, "", 200),
    ("POST", "/accounts"): RouteCase(Access.USER, "", 201, _account_body),
    ("POST", "/accounts/test"): RouteCase(Access.USER, "", 200, _account_body),
    ("GET", ACCOUNT): RouteCase(Access.USER, "account", 200),
    ("PUT", ACCOUNT): RouteCase(Access.USER, "account", 200, _replace_body),
    ("PATCH", ACCOUNT): RouteCase(Access.USER, "account", 200, lambda w, p: {"keep": True}),
    ("DELETE", ACCOUNT): RouteCase(Access.USER, "account", 204),
    ("POST", ACCOUNT + "/test"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/enable"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/disable"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/resume"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/fetch"): RouteCase(Access.USER, "account", 202),
    ("GET", ACCOUNT + "/runs"): RouteCase(Access.USER, "account", 200),
    # the target has no runs: within reach, the answer is a 404 as for any missing run
    ("GET", ACCOUNT + "/runs/{run_id}"): RouteCase(Access.USER, "account", 404),
    ("GET", ACCOUNT + "/log"): RouteCase(Access.USER, "account", 200),
    ("GET", ACCOUNT + "/refused"): RouteCase(Access.USER, "account", 200),
    ("POST", ACCOUNT + "/retry"): RouteCase(Access.USER, "account", 200),
    ("GET", ACCOUNT + "/quarantine"): RouteCase(Access.USER, "account", 200),
    # the target's quarantine is empty: within reach, a 404 as for any missing message
    ("POST", ACCOUNT + "/quarantine/{message_id}/release"): RouteCase(Access.USER, "account", 404),
    ("DELETE", ACCOUNT + "/quarantine/{message_id}"): RouteCase(Access.USER, "account", 404),
    ("GET", "/incidents"): RouteCase(Access.USER, "", 200),
    ("GET", "/me"): RouteCase(Access.USER, "", 200),
    ("PATCH", "/me"): RouteCase(Access.USER, "", 200, lambda w, p: {"notices": "mailbox"}),
    ("GET", "/users"): RouteCase(Access.MANAGER, "", 200),
    ("POST", "/users"): RouteCase(Access.MANAGER, "", 201, _new_user),
    ("GET", "/users/{user_id}"): RouteCase(Access.MANAGER, "user", 200),
    ("PATCH", "/users/{user_id}"): RouteCase(
        Access.MANAGER, "user", 200, lambda w, p: {"active": False}
    ),
    ("DELETE", "/users/{user_id}"): RouteCase(Access.MANAGER, "user", 204),
    ("GET", "/users/{user_id}/keys"): RouteCase(Access.USER, "user", 200),
    ("POST", "/users/{user_id}/keys"): RouteCase(
        Access.USER, "user", 201, lambda w, p: {"name": "cron"}
    ),
    ("DELETE", "/keys/{key_id}"): RouteCase(Access.USER, "key", 204),
    ("POST", "/poll"): RouteCase(Access.USER, "", 202),
    ("GET", "/status"): RouteCase(Access.ADMIN, "", 200),
    ("GET", "/settings"): RouteCase(Access.ADMIN, "", 200),
    ("PATCH", "/settings"): RouteCase(
        Access.ADMIN, "", 200, lambda w, p: {"runs.keep_days": 30 + next(w.serial)}
    ),
    ("GET", "/oauth/providers"): RouteCase(Access.ADMIN, "", 200),
    ("POST", "/oauth/providers"): RouteCase(Access.ADMIN, "", 201, _new_provider),
    ("GET", "/oauth/providers/{name}"): RouteCase(Access.ADMIN, "", 200),
    ("DELETE", "/oauth/providers/{name}"): RouteCase(Access.ADMIN, "", 204),
    # the target signs in with a password: within reach, the answer is a 422 saying so
    ("POST", ACCOUNT + "/connect"): RouteCase(Access.USER, "account", 422),
}

# Who reaches the fresh records (an account of owner@a.test; a plain user of a.test and
# that user's key): everyone else gets 404.
REACH = {
    "account": {"admin", "domain_admin", "owner"},
    "user": {"admin", "domain_admin"},
    "key": {"admin", "domain_admin"},
}
ROLES = {
    "admin": Role.ADMIN,
    "domain_admin": Role.DOMAIN_ADMIN,
    "foreign_domain_admin": Role.DOMAIN_ADMIN,
    "owner": Role.USER,
    "other_user": Role.USER,
}
CALLERS = [*ROLES, "anonymous", "revoked_key", "unknown_key"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    app = make_app(tmp_path_factory.mktemp("matrix") / "home")
    fake_dns(app)
    fake = FakeServer()
    access = app.account_access
    access.connector = replace(access.connector, open_source=fake.source)
    people = {
        "admin": add_person(app, "admin", "admin", Role.ADMIN),
        "domain_admin": add_person(
            app, "domain_admin", "boss@a.test", Role.DOMAIN_ADMIN, ("a.test",)
        ),
        "foreign_domain_admin": add_person(
            app, "foreign_domain_admin", "boss@b.test", Role.DOMAIN_ADMIN, ("b.test",)
        ),
        "owner": add_person(app, "owner", OWNER, Role.USER),
        "other_user": add_person(app, "other_user", "other@a.test", Role.USER),
    }
    revoked, revoked_key = app.users.create_key(SYSTEM, people["owner"].user_id, "old")
    app.users.revoke_key(SYSTEM, revoked.id)
    http, client = client_for(app)
    yield World(app, http, client, people, revoked_key)
    client.close()
    app.db.dispose()


def fresh_targets(world: World) -> Targets:
    app = world.app
    spec = AccountSpec(
        owner=OWNER,
        protocol=Protocol.POP3,
        host="mail.example.net",
        port=995,
        security=Security.SSL,
        username=f"target{next(world.serial)}",
    )
    account = app.accounts.add(spec, "matrix-stored-secret")
    user = app.users.add(SYSTEM, f"target{next(world.serial)}@a.test", Role.USER, "x" * 12)
    key, _ = app.users.create_key(SYSTEM, user.id, "target key")
    provider = f"target{next(world.serial)}"
    app.oauth_providers.add(ProviderRequest(provider, "c", preset=Preset.GOOGLE))
    return Targets(account.id, user.id, key.id, provider)


def key_of(world: World, caller: str) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "revoked_key":
        return world.revoked_key
    if caller == "unknown_key":
        return "mh_" + "x" * 43
    return world.people[caller].key


def expected_status(case: RouteCase, caller: str) -> int:
    if case.access is Access.PUBLIC:
        return case.ok
    if caller not in ROLES:
        return 401
    role = ROLES[caller]
    if case.access is Access.MANAGER and role is Role.USER:
        return 403
    if case.access is Access.ADMIN and role is not Role.ADMIN:
        return 403
    if case.target and caller not in REACH[case.target]:
        return 404
    return case.ok


def snapshot(world: World, targets: Targets) -> tuple[object, ...]:
    """The target records as stored (a refused request must leave them as they were)."""
    app = world.app
    account = app.accounts.get(targets.account_id)
    user = app.users.get(SYSTEM, targets.user_id)
    keys = app.users.keys(SYSTEM, targets.user_id)
    stored_settings = app.settings_admin.overview(SYSTEM).as_dict()
    return account, app.accounts.password_of(targets.account_id), user, keys, stored_settings


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, RouteContext]]:
    """Every route of an app (included routers and mounted apps too), with its full path:
    as FastAPI serves it, with the dependencies its routers add."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, Mount) and hasattr(route.app, "routes"):
            yield from walk(route.app.routes, prefix + route.path)
        else:
            yield prefix + (context.path or ""), context


def api_routes(http: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for path, context in walk(http.routes):
        if isinstance(context.original_route, APIRoute) and path.startswith("/api/v1/"):
            found |= {(method, path.removeprefix("/api/v1")) for method in context.methods or ()}
    return found


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


@pytest.mark.parametrize(
    ("route", "caller"),
    [(route, caller) for route in ROUTES for caller in CALLERS],
    ids=[f"{m} {p} as {c}" for (m, p) in ROUTES for c in CALLERS],
)
def test_each_caller_gets_what_their_role_and_reach_allow(
    world: World, route: tuple[str, str], caller: str
):
    method, template = route
    case = ROUTES[route]
    targets = fresh_targets(world)
    path = template.format(
        account_id=targets.account_id,
        user_id=targets.user_id,
        key_id=targets.key_id,
        name=targets.provider,
        run_id=999999,
        message_id=999999,
    )
    who = world.people.get(caller)
    body = case.body(world, who) if case.body else None
    before = snapshot(world, targets)
    response = Api(world.client, key_of(world, caller))(method, path, body)
    expected = expected_status(case, caller)
    assert response.status_code == expected, response.text
    if expected >= 400:
        error = error_of(response)
        codes = {
            401: "unauthenticated",
            403: "forbidden",
            404: "not_found",
            422: "validation_error",
        }
        assert error["code"] == codes[expected]
        assert snapshot(world, targets) == before  # a refused request changes nothing
    if expected == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if expected == 404:
        # the same answer as for a record that does not exist at all
        missing = template.format(
            account_id=999999,
            user_id=999999,
            key_id=999999,
            name="no-such-provider",
            run_id=999999,
            message_id=999999,
        )
        gone = Api(world.client, key_of(world, caller))(method, missing, body)
        assert gone.status_code == 404
    assert "matrix-stored-secret" not in response.text
    assert "matrix-source-secret" not in response.text


def test_the_matrix_covers_every_api_route(world: World):
    assert api_routes(world.http) == set(ROUTES)


def test_each_api_route_declares_the_access_the_matrix_expects(world: World):
    for path, context in walk(world.http.routes):
        if isinstance(context.original_route, APIRoute) and path.startswith("/api/v1/"):
            for method in context.methods or ():
                case = ROUTES[(method, path.removeprefix("/api/v1"))]
                assert declared_access(context.dependant) == {case.access}, (method, path)


# The only routes without a declared access: the static files and the Prometheus exporter
# (both public by nature, and not FastAPI routes that could take a dependency).
UNDECLARED_ROUTES = frozenset({"/static", "/metrics"})


def test_every_route_declares_its_access(world: World):
    undeclared = []
    checked = 0
    for path, context in walk(world.http.routes):
        route = context.original_route
        if path in UNDECLARED_ROUTES:
            continue
        if isinstance(route, APIRoute):
            checked += 1
            if len(declared_access(context.dependant)) != 1:
                undeclared.append(f"{sorted(context.methods or ())} {path}")
        else:
            undeclared.append(f"{type(route).__name__} {path}: not a FastAPI route")
    assert undeclared == [], "routes without exactly one declared Access: " + ", ".join(undeclared)
    assert checked >= len(api_routes(world.http))  # positive control: the API's routes were seen


def test_a_user_manages_their_own_api_keys(world: World):
    owner = world.people["owner"]
    api = Api(world.client, owner.key)
    created = api.post(f"/users/{owner.user_id}/keys", {"name": "my script"})
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("mh_")
    listed = api.get(f"/users/{owner.user_id}/keys").json()
    assert key["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed)
    assert Api(world.client, key["key"]).get("/me").json()["login"] == OWNER
    assert api.delete(f"/keys/{key['id']}").status_code == 204
    assert Api(world.client, key["key"]).get("/me").status_code == 401


def test_an_anonymous_caller_cannot_tell_an_account_exists(world: World):
    targets = fresh_targets(world)
    anonymous = Api(world.client, None)
    existing = anonymous.get(f"/accounts/{targets.account_id}")
    missing = anonymous.get("/accounts/999999")
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


def test_a_path_that_is_not_a_route_is_a_json_404(world: World):
    response = Api(world.client, world.people["admin"].key).get("/no-such-thing")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_the_api_documents_the_bearer_scheme(world: World):
    document = world.client.get("/api/v1/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(schemes.values())).items()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("security"), f"{method} {path} has no security requirement"
            assert "401" in operation["responses"], f"{method} {path} does not document 401"
