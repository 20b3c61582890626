"""`/api/v1/users`, `/me` and API keys, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from support.api import PASSWORD, Api, Person, add_person, client_for, error_of, make_app


@dataclass
class Team:
    app: App
    client: TestClient
    admin: Person
    boss: Person  # domain admin of a.test
    user: Person

    def api(self, who: Person | None) -> Api:
        return Api(self.client, None if who is None else who.key)


@pytest.fixture
def team(tmp_path: Path, database_url: str) -> Iterator[Team]:
    app = make_app(tmp_path / "home", database_url)
    team = Team(
        app=app,
        client=client_for(app)[1],
        admin=add_person(app, "admin", "admin", Role.ADMIN),
        boss=add_person(app, "boss", "boss@a.test", Role.DOMAIN_ADMIN, ("a.test",)),
        user=add_person(app, "user", "user@a.test", Role.USER),
    )
    yield team
    team.client.close()
    app.db.dispose()


def test_me_is_the_keys_user(team: Team):
    me = team.api(team.boss).get("/me").json()
    assert (me["login"], me["role"], me["domains"]) == ("boss@a.test", "domain_admin", ["a.test"])


def test_user_round_trip_never_shows_a_password_or_hash(team: Team):
    api = team.api(team.admin)
    texts = []
    created = api.post(
        "/users",
        {
            "login": "Ops@B.Test",
            "role": "domain_admin",
            "domains": ["b.test"],
            "password": PASSWORD,
        },
    )
    texts.append(created.text)
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["login"], user["role"], user["domains"], user["active"]) == (
        "ops@b.test",  # an address is stored in lower case
        "domain_admin",
        ["b.test"],
        True,
    )
    got = api.get(f"/users/{user['id']}")
    texts.append(got.text)
    assert got.json() == user
    changed = api.patch(f"/users/{user['id']}", {"domains": ["b.test", "c.test"], "active": False})
    texts.append(changed.text)
    assert (changed.json()["domains"], changed.json()["active"]) == (["b.test", "c.test"], False)
    listed = api.get("/users")
    texts.append(listed.text)
    assert {u["login"] for u in listed.json()} == {
        "admin",
        "boss@a.test",
        "user@a.test",
        "ops@b.test",
    }
    assert api.delete(f"/users/{user['id']}").status_code == 204
    assert api.get(f"/users/{user['id']}").status_code == 404
    for text in texts:
        assert PASSWORD not in text
        assert "argon2" not in text
        assert "password" not in text


def test_a_domain_admin_manages_the_users_of_their_domains_only(team: Team):
    api = team.api(team.boss)
    made = api.post("/users", {"login": "new@a.test", "password": PASSWORD})
    assert made.status_code == 201, made.text
    for body in (
        {"login": "new@b.test", "password": PASSWORD},
        {
            "login": "boss2@a.test",
            "role": "domain_admin",
            "domains": ["a.test"],
            "password": PASSWORD,
        },
        {"login": "root@a.test", "role": "admin", "password": PASSWORD},
    ):
        refused = api.post("/users", body)
        assert refused.status_code == 403, refused.text
        assert error_of(refused)["code"] == "forbidden"
    assert {u["login"] for u in api.get("/users").json()} == {"user@a.test", "new@a.test"}
    promoted = api.patch(f"/users/{made.json()['id']}", {"role": "admin"})
    assert promoted.status_code == 403
    assert api.get(f"/users/{team.admin.user_id}").status_code == 404  # out of reach
    assert api.delete(f"/users/{team.admin.user_id}").status_code == 404
    assert api.delete(f"/users/{made.json()['id']}").status_code == 204


def test_a_plain_user_cannot_manage_users(team: Team):
    api = team.api(team.user)
    response = api.get("/users")
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert api.post("/users", {"login": "x@a.test", "password": PASSWORD}).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"login": "not an address", "password": PASSWORD}, "login"),
        ({"login": "x@a.test", "password": "short"}, "password"),
        ({"login": "x@a.test", "password": PASSWORD, "role": "root"}, "role"),
        ({"login": "x@a.test", "password": PASSWORD, "domains": ["a.test"]}, "domains"),
        ({"login": "x@a.test", "password": PASSWORD, "role": "domain_admin"}, "domains"),
        ({"login": "user@a.test", "password": PASSWORD}, "login"),  # exists already
    ],
)
def test_invalid_users_are_a_422_naming_the_field(team: Team, body: dict[str, object], field: str):
    response = team.api(team.admin).post("/users", body)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field


def test_the_last_admin_cannot_be_removed_or_disabled(team: Team):
    api = team.api(team.admin)
    admin_id = team.admin.user_id
    refused = api.patch(f"/users/{admin_id}", {"active": False})
    assert refused.status_code == 403
    assert "last admin" in error_of(refused)["message"]
    assert api.delete(f"/users/{admin_id}").status_code == 403  # nobody deletes themselves

    second = add_person(team.app, "root", "root", Role.ADMIN)
    demote = api.patch(f"/users/{second.user_id}", {"role": "user"})
    assert (demote.status_code, error_of(demote)["field"]) == (422, "role")  # "root": no address
    assert Api(team.client, second.key).delete(f"/users/{admin_id}").status_code == 204
    assert api.get("/me").status_code == 401  # the deleted admin's key went with them
    last = Api(team.client, second.key).patch(f"/users/{second.user_id}", {"active": False})
    assert last.status_code == 403


def test_an_api_key_is_shown_once_and_revoking_it_locks_out(team: Team):
    api = team.api(team.boss)
    created = api.post(f"/users/{team.user.user_id}/keys", {"name": "osTicket cron"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith(key["prefix"])
    listed = api.get(f"/users/{team.user.user_id}/keys").json()
    assert [k["name"] for k in listed] == ["user key", "osTicket cron"]
    assert all("key" not in k and len(k["prefix"]) < 16 for k in listed)

    as_user = Api(team.client, key["key"])
    assert as_user.get("/me").json()["login"] == "user@a.test"
    assert api.delete(f"/keys/{key['id']}").status_code == 204
    refused = as_user.get("/me")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert error_of(refused)["code"] == "unauthenticated"
    assert api.delete(f"/keys/{key['id']}").status_code == 404


def test_a_disabled_users_keys_stop_working(team: Team):
    assert team.api(team.user).get("/me").status_code == 200
    disabled = team.api(team.admin).patch(f"/users/{team.user.user_id}", {"active": False})
    assert disabled.status_code == 200
    assert team.api(team.user).get("/me").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer mh_" + "x" * 300, "Token mh_abc"],
)
def test_a_missing_or_malformed_authorization_is_a_401(team: Team, header: str):
    headers = {"Authorization": header} if header else {}
    response = team.client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_admin_reads_the_system_status_with_recent_errors(team: Team):
    app = team.app
    account = app.accounts.add(
        AccountSpec(
            owner="user@a.test",
            protocol=Protocol.IMAP,
            host="mail.example.net",
            port=993,
            security=Security.SSL,
            username="u",
        ),
        "source-secret",
    )
    with app.db.begin() as conn:
        run_id = app.run_store.start(conn, account.id, "schedule", 100.0)
        app.run_store.finish(
            conn, run_id, result="error", finished_at=101.0, fetched=0, size=0, deleted=0,
            skipped=0, error="login failed: nope", log="log\n",
        )  # fmt: skip
    status = team.api(team.admin).get("/status")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["accounts_total"] == 1
    assert body["recent_errors"][0]["error"] == "login failed: nope"
    assert body["recent_errors"][0]["owner"] == "user@a.test"
    assert "source-secret" not in status.text
    assert team.api(team.boss).get("/status").status_code == 403
