"""Folder rules through the web form and the API: stored as given, shown back, bad ones
named beside their field (with every other error of the same round trip), and refused for
a delivery that cannot file into folders."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from mailhaul.adapters.passwords import PasswordHashes
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.folders import FolderRules
from mailhaul.settings import load_settings
from mailhaul.web.app import create_app
from support.api import Api, add_person, client_for, error_of
from support.pages import Browser

ADMIN_PASSWORD = "admin-password-1"
FORM = {
    "owner": "ann@a.test",
    "protocol": "imap",
    "security": "ssl",
    "host": "mail.example.net",
    "username": "remote-user",
    "password": "Src-Pa55word",
    "folders": "INBOX",
    "verify_cert": "on",
    "active": "on",
    "special_use_map": "on",
}


def make(tmp_path: Path, toml: str = "") -> App:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mailhaul.toml").write_text(toml)
    settings = load_settings(home, {"poll.timeout": 5}, environ={})
    init_home(settings)
    app = App(settings)
    app.__dict__["password_hashes"] = PasswordHashes(
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    app.users.add(Principal.system(), "admin", Role.ADMIN, ADMIN_PASSWORD)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = make(tmp_path)
    yield app
    app.db.dispose()


@pytest.fixture
def admin(app: App) -> Browser:
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("admin", ADMIN_PASSWORD).status_code == 303
    return browser


def field_error(html: str, field: str) -> str | None:
    message = re.search(rf'<span class="field-error" id="e-{field}">([^<]*)</span>', html)
    return None if message is None else message.group(1)


def test_the_form_stores_the_rules_and_shows_them_back(app: App, admin: Browser):
    response = admin.post(
        "/accounts/new",
        {
            **FORM,
            "all_folders": "on",
            "include": "Junk\n",
            "exclude": "Archive/*\nLists/%",
            "map": "[Gmail]/Spam=Junk\nWork=",
            "into": "Fetched/gmail",
        },
    )
    assert response.status_code == 303, field_error(response.text, "map")
    account_id = int(response.headers["location"].split("/")[2].split("?")[0])
    rules = app.accounts.get(account_id).spec.options.rules
    assert rules == FolderRules(
        True, ("Junk",), ("Archive/*", "Lists/%"), (("[Gmail]/Spam", "Junk"), ("Work", "")),
        "Fetched/gmail", True,
    )  # fmt: skip
    page = admin.get(f"/accounts/{account_id}").text
    assert "every folder but Trash" in page and "[Gmail]/Spam → Junk" in page
    assert "Work → the mailbox" in page and "INBOX: Fetched/gmail" in page
    form = admin.get(f"/accounts/{account_id}/edit").text
    assert "[Gmail]/Spam=Junk" in form and 'value="Fetched/gmail"' in form


def test_bad_rules_are_named_beside_their_fields_with_the_other_errors(admin: Browser):
    response = admin.post(
        "/accounts/new",
        {**FORM, "map": "Sent", "into": "a//b", "interval": "5"},
    )
    assert response.status_code == 400
    assert "REMOTE=LOCAL" in (field_error(response.text, "map") or "")
    assert "not a local folder name" in (field_error(response.text, "into") or "")
    assert field_error(response.text, "interval")  # the same round trip
    assert "a//b" in response.text  # what was typed comes back


def test_the_api_takes_shows_and_replaces_the_rules(app: App, tmp_path: Path):
    person = add_person(app, "boss", "boss@example.org", Role.ADMIN)
    api = Api(client_for(app)[1], person.key)
    body = {
        "owner": "ann@a.test",
        "protocol": "imap",
        "host": "mail.example.net",
        "username": "u",
        "password": "a-source-password",
        "folder_rules": {"all_folders": True, "map": [["Sent Items", "Sent/old"]]},
    }
    created = api.post("/accounts", body)
    assert created.status_code == 201, created.text
    shown = created.json()["folder_rules"]
    assert shown["all_folders"] is True and shown["map"] == [["Sent Items", "Sent/old"]]
    assert shown["special_use_map"] is True  # the default
    account_id = created.json()["id"]
    patched = api.patch(f"/accounts/{account_id}", {"folder_rules": {"into": "X"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["folder_rules"]["into"] == "X"
    assert patched.json()["folder_rules"]["all_folders"] is False  # replaced as a whole
    untouched = api.patch(f"/accounts/{account_id}", {"interval": 600})
    assert untouched.json()["folder_rules"]["into"] == "X"
    bad = api.patch(f"/accounts/{account_id}", {"folder_rules": {"into": "a//b"}})
    assert bad.status_code == 422
    assert error_of(bad)["field"] == "into"


def test_a_delivery_without_folders_refuses_them_in_the_form(tmp_path: Path):
    app = make(tmp_path, '[delivery]\nmethod = "mda"\nmda = "/bin/true"\n')
    try:
        browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
        assert browser.login("admin", ADMIN_PASSWORD).status_code == 303
        refused = browser.post("/accounts/new", {**FORM, "into": "Fetched"})
        assert refused.status_code == 400
        assert "cannot choose a folder" in (field_error(refused.text, "into") or "")
        accepted = browser.post("/accounts/new", {**FORM, "all_folders": "on"})
        assert accepted.status_code == 303  # every folder, into the mailbox itself
        page = browser.get(accepted.headers["location"].split("?")[0]).text
        assert "the mailbox (this delivery files into no folders)" in page
    finally:
        app.db.dispose()


def test_retention_and_limits_through_the_form_and_the_api(app: App, admin: Browser):
    response = admin.post(
        "/accounts/new",
        {**FORM, "keep": "on", "delete_after": "30", "max_bytes_per_run": "200M"},
    )
    assert response.status_code == 303, response.text
    account_id = int(response.headers["location"].split("/")[2].split("?")[0])
    options = app.accounts.get(account_id).spec.options
    assert (options.delete_after_days, options.max_bytes_per_run) == (30, 200 << 20)
    assert options.max_messages_per_run is None
    page = admin.get(f"/accounts/{account_id}").text
    assert "keep, then delete 30 days after delivery" in page
    assert "at most 200.0 MiB" in page or "at most 200 MiB" in page
    refused = admin.post("/accounts/new", {**FORM, "delete_after": "30", "max_bytes_per_run": "x"})
    assert "goes with keep" in (field_error(refused.text, "delete_after") or "")
    assert field_error(refused.text, "max_bytes_per_run")

    person = add_person(app, "boss", "boss@example.org", Role.ADMIN)
    api = Api(client_for(app)[1], person.key)
    shown = api.get(f"/accounts/{account_id}").json()
    assert shown["delete_after_days"] == 30 and shown["max_bytes_per_run"] == 200 << 20
    patched = api.patch(f"/accounts/{account_id}", {"delete_after_days": None})
    assert patched.json()["delete_after_days"] is None
    assert patched.json()["max_bytes_per_run"] == 200 << 20  # not named: kept
    bad = api.patch(f"/accounts/{account_id}", {"keep": False, "delete_after_days": 5})
    assert bad.status_code == 422 and error_of(bad)["field"] == "delete_after"


def test_first_sync_through_the_form_and_the_api(app: App, admin: Browser):
    response = admin.post("/accounts/new", {**FORM, "new_only": "on", "since": "2026-01-01"})
    assert response.status_code == 303, response.text
    account_id = int(response.headers["location"].split("/")[2].split("?")[0])
    options = app.accounts.get(account_id).spec.options
    assert (options.new_only, str(options.since)) == (True, "2026-01-01")
    assert "only mail since 2026-01-01" in admin.get(f"/accounts/{account_id}").text
    refused = admin.post("/accounts/new", {**FORM, "since": "yesterday"})
    assert "YYYY-MM-DD" in (field_error(refused.text, "since") or "")
    person = add_person(app, "boss", "boss@example.org", Role.ADMIN)
    api = Api(client_for(app)[1], person.key)
    assert api.get(f"/accounts/{account_id}").json()["since"] == "2026-01-01"
    patched = api.patch(f"/accounts/{account_id}", {"since": None, "new_only": False})
    assert (patched.json()["since"], patched.json()["new_only"]) == (None, False)
