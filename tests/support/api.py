"""An App with its HTTP app for API tests: cheap password hashes, people with API keys, a
fake DNS for the source-host policy, and a client that speaks for one person."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from argon2 import PasswordHasher
from fastapi import FastAPI
from starlette.testclient import TestClient

from mailhaul.adapters.passwords import PasswordHashes
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.source_policy import IpAddress
from mailhaul.services.account_access import HostLookups
from mailhaul.settings import load_settings
from mailhaul.web.app import create_app

SYSTEM = Principal.system()
PUBLIC_ADDRESS = ipaddress.ip_address("93.184.216.34")
PASSWORD = "a-long-enough-password"


def make_app(
    home: Path, database_url: str | None = None, overrides: Mapping[str, object] | None = None
) -> App:
    """A fresh home with cheap argon2 parameters (the defaults cost ~70 ms a hash)."""
    values: dict[str, object] = {"poll.timeout": 10, **(overrides or {})}
    if database_url:
        values["database.url"] = database_url
    settings = load_settings(home, values, environ={})
    init_home(settings)
    app = App(settings)
    app.__dict__["password_hashes"] = PasswordHashes(
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    return app


def fake_dns(app: App, names: Mapping[str, str] | None = None) -> None:
    """Resolve host names without the network: IP literals as themselves, names in
    ``names`` to their address, any other name to a public address."""
    table = dict(names or {})

    def resolve(host: str, _port: int) -> list[IpAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        return [ipaddress.ip_address(table[host])] if host in table else [PUBLIC_ADDRESS]

    app.account_access.hosts = HostLookups(resolve=resolve, own=list)


@dataclass
class Person:
    """A user with an API key; ``mailbox`` is an address they may own accounts for."""

    name: str
    user_id: int
    key: str
    mailbox: str
    domain: str


def add_person(
    app: App, name: str, login: str, role: Role, domains: tuple[str, ...] = ()
) -> Person:
    """A user with one API key."""
    user = app.users.add(SYSTEM, login, role, PASSWORD, domains)
    _, key = app.users.create_key(SYSTEM, user.id, f"{name} key")
    domain = domains[0] if domains else (login.partition("@")[2] or "a.test")
    mailbox = login if role is Role.USER else f"someone@{domain}"
    return Person(name=name, user_id=user.id, key=key, mailbox=mailbox, domain=domain)


class Api:
    """Requests to `/api/v1` with one person's key (or none)."""

    def __init__(self, client: TestClient, key: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def __call__(self, method: str, path: str, json: Any = None, **kwargs: Any) -> httpx2.Response:
        if json is not None:
            kwargs["json"] = json
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        return self("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx2.Response:
        return self("POST", path, json, **kwargs)

    def patch(self, path: str, json: Any = None) -> httpx2.Response:
        return self("PATCH", path, json)

    def put(self, path: str, json: Any = None) -> httpx2.Response:
        return self("PUT", path, json)

    def delete(self, path: str) -> httpx2.Response:
        return self("DELETE", path)


def client_for(app: App) -> tuple[FastAPI, TestClient]:
    """The whole HTTP app of `mailhaul serve` and a test client on it."""
    http = create_app(app)
    return http, TestClient(http)


def error_of(response: httpx2.Response) -> dict[str, Any]:
    """The ``error`` object of an error response (asserting its shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "field"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)
