"""`/api/v1/settings` (admins), on SQLite and PostgreSQL: what each editable setting is and
where it comes from; changes checked as mailhaul.toml is, errors naming the setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Role
from mailhaul.settings import load_settings
from support.api import Api, add_person, client_for, error_of, make_app


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = make_app(tmp_path / "home", database_url)
    yield app
    app.db.dispose()


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    client = client_for(app)[1]
    yield client
    client.close()


@pytest.fixture
def admin(app: App, client: TestClient) -> Api:
    return Api(client, add_person(app, "admin", "admin", Role.ADMIN).key)


def by_key(body: dict[str, object]) -> dict[str, dict[str, object]]:
    items = body["settings"]
    assert isinstance(items, list)
    return {item["key"]: item for item in items}


def test_an_admin_reads_and_changes_the_settings(app: App, admin: Api):
    before = by_key(admin.get("/settings").json())
    assert set(before) == {
        "poll.interval",
        "poll.max_size",
        "poll.per_host_limit",
        "poll.max_backoff",
        "poll.auth_failures_to_pause",
        "runs.keep_days",
        "push.enabled",
        "limits.daily_bytes_per_host",
        "limits.connections_per_account",
        "sources.allow_private",
        "sources.allowed_ports",
        "filter.rspamd",
        "filter.spamd",
        "filter.clamd",
        "filter.on_scanner_failure",
        "filter.max_size",
        "filter.timeout",
        "filter.antispam",
        "filter.antivirus",
        "notify.mailbox",
        "notify.after_failures",
        "notify.after_minutes",
        "notify.admins",
        "notify.cert_days",
        "notify.smtp",
        "notify.webhook",
        "web.public_url",
    }
    assert before["poll.interval"]["value"] == 300
    assert before["filter.on_scanner_failure"]["value"] == "defer"
    response = admin.patch(
        "/settings",
        {
            "poll.interval": 600,
            "sources.allow_private": True,
            "delivery.domains": {"b.test": {"method": "lmtp", "lmtp": "127.0.0.1:24"}},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    after = by_key(body)
    assert after["poll.interval"] == {
        "key": "poll.interval",
        "value": 600,
        "source": "database",
        "editable": True,
        "updated_at": after["poll.interval"]["updated_at"],
        "updated_by": "admin",
    }
    assert after["sources.allow_private"]["value"] is True
    [domain] = body["delivery_domains"]
    assert domain["domain"] == "b.test"
    assert domain["stored"] == {"method": "lmtp", "lmtp": "127.0.0.1:24"}
    assert domain["sources"]["method"] == "database"
    assert app.settings.interval == 600  # applied in this process at once
    created = admin.post("/accounts", {"owner": "x@b.test", "host": "mail.example.net",
                                       "username": "u", "password": "p"})  # fmt: skip
    assert created.json()["interval"] == 600
    gone = admin.patch("/settings", {"poll.interval": None, "delivery.domains": {"b.test": None}})
    assert by_key(gone.json())["poll.interval"]["source"] != "database"
    assert gone.json()["delivery_domains"] == []


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"poll.interval": 0}, "poll.interval", "must be positive"),
        ({"poll.max_size": "lots"}, "poll.max_size", "whole number"),
        ({"poll.workers": 8}, "poll.workers", "is not a setting that can be changed here"),
        ({"sources.allowed_ports": "imaps"}, "sources.allowed_ports", "TCP ports"),
        (
            {"delivery.domains": {"b.test": {"method": "mda", "mda": "/bin/sh"}}},
            'delivery.domains."b.test".mda',
            "cannot be set here",
        ),
        (
            {"delivery.domains": {"b.test": {"smtp_password_file": "/etc/shadow"}}},
            'delivery.domains."b.test".smtp_password_file',
            "cannot be set here",
        ),
        ({"delivery.domains": ["b.test"]}, "delivery.domains", "must map domain names"),
        ({"delivery.domains": {"no such domain": {}}}, 'delivery.domains."no such domain"', ""),
    ],
)
def test_a_bad_change_is_a_422_naming_the_setting_and_stores_nothing(
    app: App, admin: Api, change: dict[str, object], field: str, words: str
):
    before = admin.get("/settings").json()
    response = admin.patch("/settings", {"runs.keep_days": 7, **change})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == ("validation_error", field)
    assert words in error["message"]
    assert admin.get("/settings").json() == before
    assert app.settings.runs_keep_days == 30


def test_a_setting_the_environment_sets_is_refused(tmp_path: Path, database_url: str):
    settings = load_settings(
        tmp_path / "home", {"database.url": database_url}, environ={"MAILHAUL_RUNS_KEEP_DAYS": "9"}
    )
    init_home(settings)
    app = App(settings)
    client = client_for(app)[1]
    try:
        api = Api(client, add_person(app, "admin2", "admin2", Role.ADMIN).key)
        item = by_key(api.get("/settings").json())["runs.keep_days"]
        assert (item["value"], item["source"], item["editable"]) == (9, "environment", False)
        response = api.patch("/settings", {"runs.keep_days": 3})
        assert response.status_code == 422
        error = error_of(response)
        assert error["field"] == "runs.keep_days"
        assert "MAILHAUL_RUNS_KEEP_DAYS" in error["message"]
    finally:
        client.close()
        app.db.dispose()


def test_non_admins_and_bad_bodies(app: App, client: TestClient, admin: Api):
    boss = add_person(app, "boss", "boss@a.test", Role.DOMAIN_ADMIN, ("a.test",))
    assert Api(client, boss.key).patch("/settings", {"poll.interval": 600}).status_code == 403
    raw = client.patch(
        "/api/v1/settings",
        content=b"{not json",
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert (raw.status_code, error_of(raw)["code"]) == (400, "malformed_json")
    assert admin.patch("/settings", [1, 2]).status_code == 422
    assert app.settings.interval == 300
