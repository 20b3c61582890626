"""The `push` option through the API, stored in the database: on, off,
or (null) the setting push.enabled; refused on POP3 with the field named."""

from __future__ import annotations

from pathlib import Path

from mailhaul.domain.access import Role
from support.api import Api, add_person, client_for, error_of, make_app

ACCOUNT = {
    "owner": "user@a.test",
    "protocol": "imap",
    "host": "mail.example.net",
    "username": "petrov",
    "password": "the-source-password",
}


def test_the_api_sets_push_on_off_or_back_to_the_setting(tmp_path: Path, database_url: str):
    app = make_app(tmp_path / "home", database_url)
    admin = add_person(app, "admin", "admin", Role.ADMIN)
    with client_for(app)[1] as client:
        api = Api(client, admin.key)
        created = api.post("/accounts", ACCOUNT)
        assert created.status_code == 201, created.text
        assert created.json()["push"] is None  # follows push.enabled
        account = f"/accounts/{created.json()['id']}"
        assert api.patch(account, {"push": False}).json()["push"] is False
        assert api.get(account).json()["push"] is False  # stored
        assert api.patch(account, {"interval": 600}).json()["push"] is False  # kept
        assert api.patch(account, {"push": None}).json()["push"] is None
        refused = api.post("/accounts", {**ACCOUNT, "protocol": "pop3", "push": True})
        assert refused.status_code == 422
        assert error_of(refused)["field"] == "push"
        plain_pop3 = api.post("/accounts", {**ACCOUNT, "protocol": "pop3", "push": False})
        assert plain_pop3.status_code == 201, plain_pop3.text
    app.db.dispose()
