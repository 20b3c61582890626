"""`/api/v1/oauth/providers` and `/accounts/{id}/connect` without a provider to talk to:
admins register providers with a write-only secret; the refusals say what to fix. (The
flows against a real authorization server are in test_oauth_sign_in.py.)"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security, SignInMethod
from support.api import Api, add_person, client_for, error_of, make_app

SECRET = "client-secret-for-the-api-0123"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = make_app(tmp_path / "home", database_url)
    yield app
    app.db.dispose()


def test_admins_register_providers_and_never_read_the_secret_back(app: App) -> None:
    client = client_for(app)[1]
    admin = Api(client, add_person(app, "admin", "admin", Role.ADMIN).key)
    created = admin.post(
        "/oauth/providers",
        {"name": "m365", "preset": "microsoft", "tenant": "contoso", "client_id": "id",
         "client_secret": SECRET},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["has_client_secret"] is True and "client_secret" not in body
    assert body["token_url"].startswith("https://login.microsoftonline.com/contoso/")
    listed = admin.get("/oauth/providers")
    shown = admin.get("/oauth/providers/m365")
    for response in (created, listed, shown):
        assert SECRET not in response.text
        assert base64.b64encode(SECRET.encode()).decode() not in response.text
    assert [p["name"] for p in listed.json()] == ["m365"]
    refused = admin.post(
        "/oauth/providers",
        {"name": "lab", "token_url": "http://idp.example.org/t", "device_url":
         "https://idp.example.org/d", "scope": "mail", "client_id": "c"},
    )  # fmt: skip
    assert refused.status_code == 422 and "must use https" in error_of(refused)["message"]
    twice = admin.post("/oauth/providers", {"name": "m365", "preset": "google", "client_id": "c"})
    assert twice.status_code == 422 and "exists already" in error_of(twice)["message"]
    assert admin.delete("/oauth/providers/m365").status_code == 204
    assert admin.get("/oauth/providers/m365").status_code == 404
    client.close()


def test_connect_answers_plainly_when_no_flow_can_start(app: App) -> None:
    client = client_for(app)[1]
    owner = add_person(app, "user", "user@a.test", Role.USER)
    api = Api(client, owner.key)
    admin = Api(client, add_person(app, "admin", "admin", Role.ADMIN).key)
    google = admin.post("/oauth/providers", {"name": "g", "preset": "google", "client_id": "c"})
    spec = AccountSpec(
        owner="user@a.test",
        protocol=Protocol.IMAP,
        host="imap.gmail.com",
        port=993,
        security=Security.SSL,
        username="user@gmail.com",
        sign_in=SignInMethod.OAUTH2,
        oauth_provider_id=google.json()["id"],
    )
    account = app.accounts.add(spec, None)
    shown = api.get(f"/accounts/{account.id}").json()
    assert shown["sign_in"] == "oauth2" and shown["state"] == "sign-in needed"
    assert shown["sign_in_problem"] == "not connected yet"
    fetch = api.post(f"/accounts/{account.id}/fetch")
    assert fetch.status_code == 409 and "Sign-in needed" in error_of(fetch)["message"]
    no_device = api.post(f"/accounts/{account.id}/connect")
    assert no_device.status_code == 422
    assert "g has no device flow: connect the account in the web UI" in no_device.text
    in_use = admin.delete("/oauth/providers/g")
    assert in_use.status_code == 422 and "1 account(s)" in error_of(in_use)["message"]
    client.close()


def test_an_oauth_account_is_created_through_the_api_without_a_password(app: App) -> None:
    client = client_for(app)[1]
    admin = Api(client, add_person(app, "admin", "admin", Role.ADMIN).key)
    admin.post("/oauth/providers", {"name": "m365", "preset": "microsoft", "client_id": "c"})
    fields = {"owner": "me@a.test", "protocol": "imap", "host": "outlook.office365.com",
              "username": "me@contoso.example"}  # fmt: skip
    created = admin.post("/accounts", {**fields, "sign_in": "oauth2", "oauth_provider": "m365"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["sign_in"], body["state"]) == ("oauth2", "sign-in needed")
    cases = [
        ({"sign_in": "oauth2"}, "oauth_provider"),
        ({"sign_in": "oauth2", "oauth_provider": "nope"}, "oauth_provider"),
        ({"sign_in": "oauth2", "oauth_provider": "m365", "password": "pw"}, "password"),
        ({}, "password"),  # a password account needs its password
    ]
    for extra, field in cases:
        refused = admin.post("/accounts", {**fields, **extra})
        assert refused.status_code == 422, (extra, refused.text)
        assert error_of(refused)["field"] == field, extra
    with_password = admin.post("/accounts", {**fields, "username": "u2", "password": "pw"})
    assert with_password.status_code == 201  # the control
    assert with_password.json()["sign_in"] == "password"
    client.close()
