"""`/api/v1/accounts` as a client uses it, on SQLite and PostgreSQL, against a real Dovecot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update
from starlette.testclient import TestClient

from mailhaul.adapters.db.tables import accounts, messages
from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from support.api import Api, Person, add_person, client_for, error_of, fake_dns, make_app
from support.dovecot import Mailbox

SOURCE_PASSWORD = "the-source-password"


@dataclass
class Panel:
    """An app with an admin, a domain admin of a.test, and two users of a.test."""

    app: App
    client: TestClient
    admin: Person
    domain_admin: Person
    user: Person
    other_user: Person

    def api(self, who: Person | None) -> Api:
        return Api(self.client, None if who is None else who.key)


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    app = make_app(tmp_path / "home", database_url)
    fake_dns(app, {"intranet.example.net": "10.20.30.40", "localhost": "127.0.0.1"})
    panel = Panel(
        app=app,
        client=client_for(app)[1],
        admin=add_person(app, "admin", "admin", Role.ADMIN),
        domain_admin=add_person(app, "boss", "boss@a.test", Role.DOMAIN_ADMIN, ("a.test",)),
        user=add_person(app, "user", "user@a.test", Role.USER),
        other_user=add_person(app, "other", "other@a.test", Role.USER),
    )
    yield panel
    panel.client.close()
    app.db.dispose()


def dovecot_account(mailbox: Mailbox, **changes: Any) -> dict[str, Any]:
    """Settings of an account on the test Dovecot (only an admin may aim at loopback)."""
    return {
        "owner": "user@a.test",
        "protocol": "imap",
        "host": "localhost",
        "port": mailbox.ports.imaps,
        "security": "ssl",
        "ca_file": str(mailbox.server.ca_path),
        "username": mailbox.user,
        "password": mailbox.password,
        **changes,
    }


def public_account(**changes: Any) -> dict[str, Any]:
    return {
        "host": "mail.example.net",
        "username": "petrov",
        "password": SOURCE_PASSWORD,
        **changes,
    }


def test_account_round_trip_never_shows_the_password(panel: Panel):
    api = panel.api(panel.admin)
    seen: list[str] = []

    def call(response: Any, status: int) -> dict[str, Any]:
        seen.append(response.text)
        assert response.status_code == status, response.text
        return response.json() if response.content else {}

    created = call(
        api.post("/accounts", public_account(owner="user@a.test", protocol="imap", keep=True)),
        201,
    )
    account_id = created["id"]
    assert created["port"] == 993  # imap + ssl
    assert created["owner"] == "user@a.test"
    assert created["destination"] == "user@a.test"
    assert created["keep"] is True
    assert created["state"] == "new"
    assert created["folders"] == ["INBOX"]
    assert created["interval"] == panel.app.settings.interval
    assert "password" not in created

    assert call(api.get(f"/accounts/{account_id}"), 200) == created
    listed = call(api.get("/accounts"), 200)
    assert listed["total"] == 1
    assert listed["items"][0]["source"] == "imap/ssl mail.example.net:993"

    starttls = {"security": "starttls", "password": SOURCE_PASSWORD}  # the port changes too
    patched = call(api.patch(f"/accounts/{account_id}", starttls), 200)
    assert (patched["security"], patched["port"]) == ("starttls", 143)  # the port followed
    assert patched["keep"] is True
    replaced = call(api.put(f"/accounts/{account_id}", public_account(protocol="pop3")), 200)
    assert (replaced["protocol"], replaced["port"], replaced["keep"]) == ("pop3", 995, False)
    assert replaced["owner"] == "user@a.test"  # PUT keeps the owner when none is given

    call(api.delete(f"/accounts/{account_id}"), 204)
    gone = api.get(f"/accounts/{account_id}")
    assert (gone.status_code, error_of(gone)["code"]) == (404, "not_found")
    assert all(SOURCE_PASSWORD not in text for text in seen)
    assert panel.app.accounts.list_all() == []


def test_empty_or_omitted_password_keeps_the_stored_one(panel: Panel, mailbox: Mailbox):
    api = panel.api(panel.admin)
    created = api.post("/accounts", dovecot_account(mailbox))
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    for change in ({"keep": True}, {"keep": False, "password": ""}, {"password": None}):
        assert api.patch(f"/accounts/{account_id}", change).status_code == 200
        assert panel.app.accounts.password_of(account_id) == mailbox.password
    replaced = api.put(f"/accounts/{account_id}", dovecot_account(mailbox, password=""))
    assert replaced.status_code == 200, replaced.text
    # the stored password still logs in
    report = api.post(f"/accounts/{account_id}/test").json()
    assert report["ok"] is True, report
    assert api.patch(f"/accounts/{account_id}", {"password": "new-one"}).status_code == 200
    assert panel.app.accounts.password_of(account_id) == "new-one"


def test_connection_test_counts_the_folders_and_fetches_nothing(panel: Panel, mailbox: Mailbox):
    mailbox.deliver(b"Subject: one\n\nfirst\n")
    mailbox.deliver(b"Subject: two\n\nsecond\n", seen=True)
    api = panel.api(panel.admin)
    account_id = api.post("/accounts", dovecot_account(mailbox)).json()["id"]
    response = api.post(f"/accounts/{account_id}/test")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True
    assert report["folders"] == {"INBOX": 2}
    assert "INBOX" in report["server_folders"]
    assert mailbox.password not in response.text
    assert len(mailbox.list_messages()) == 2
    assert not any(m.deleted for m in mailbox.list_messages())
    assert api.get(f"/accounts/{account_id}/runs").json() == []  # a test is not a run


def test_unsaved_settings_can_be_tested(panel: Panel, mailbox: Mailbox):
    mailbox.deliver(b"Subject: hi\n\nhello\n")
    api = panel.api(panel.admin)
    settings = dovecot_account(mailbox, protocol="pop3", port=mailbox.ports.pop3s)
    report = api.post("/accounts/test", settings).json()
    assert report["ok"] is True, report
    assert report["folders"] == {"INBOX": 1}
    assert api.get("/accounts").json()["total"] == 0  # nothing was saved


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": "pop3"}, "port"),
        ({"host": "not a host!"}, "host"),
        ({"host": "-bad-.example.net"}, "host"),
        ({"host": ""}, "host"),
        ({"owner": "not-an-address"}, "owner"),
        ({"owner": "../../etc@a.test"}, "owner"),
        ({"deliver_to": "x@"}, "deliver_to"),
        ({"protocol": "smtp"}, "protocol"),
        ({"security": "tls"}, "security"),
        ({"interval": 5}, "interval"),
        ({"max_size": 0}, "max_size"),
        ({"folders": []}, "folders"),
        ({"folders": ["INBOX", "Sent"]}, "folders"),  # POP3 has only the INBOX
        ({"folders": ["INBOX", "INBOX"]}, "folders"),
        ({"username": "a\r\nQUIT"}, "username"),
        ({"password": "line\nbreak"}, "password"),
        ({"password": ""}, "password"),
        ({"pasword": "typo"}, "pasword"),
        ({"ca_file": "/no/such/ca.pem"}, "ca_file"),
        ({"ca_file": "/" + "x" * 300}, "ca_file"),  # a name too long for the file system
        ({"owner": "a@" + "ü." * 100 + "test"}, "owner"),  # 800 characters once IDNA-encoded
    ],
)
def test_invalid_settings_are_a_422_naming_the_field(
    panel: Panel, change: dict[str, Any], field: str
):
    body = public_account(**({"owner": "u@a.test"} | change))
    response = panel.api(panel.admin).post("/accounts", body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == ("validation_error", field)
    assert panel.app.accounts.list_all() == []


def test_a_missing_required_field_is_named(panel: Panel):
    response = panel.api(panel.user).post("/accounts", {"host": "mail.example.net"})
    assert response.status_code == 422
    assert error_of(response)["field"] in {"username", "password"}
    assert "required" in error_of(response)["message"]


def test_malformed_json_is_a_400(panel: Panel):
    response = panel.api(panel.user).post(
        "/accounts", content=b'{"host": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


def test_a_user_account_is_their_own_and_delivers_to_them(panel: Panel):
    api = panel.api(panel.user)
    created = api.post("/accounts", public_account())
    assert created.status_code == 201, created.text
    account = created.json()
    assert (account["owner"], account["destination"], account["port"]) == (
        "user@a.test",
        "user@a.test",
        995,
    )
    for change in ({"deliver_to": "other@a.test"}, {"owner": "other@a.test"}):
        refused = api.post("/accounts", public_account(**change))
        assert refused.status_code == 422
        assert error_of(refused)["field"] == next(iter(change))
        changed = api.patch(f"/accounts/{account['id']}", change)
        assert changed.status_code == 422
        assert error_of(changed)["field"] == next(iter(change))
    stored = panel.app.accounts.get(account["id"]).spec
    assert (stored.owner, stored.deliver_to) == ("user@a.test", "")


def test_an_admin_must_name_the_owner(panel: Panel):
    response = panel.api(panel.admin).post("/accounts", public_account())
    assert response.status_code == 422
    assert error_of(response)["field"] == "owner"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"host": "127.0.0.1"}, "host"),
        ({"host": "localhost", "port": 995}, "host"),
        ({"host": "10.0.0.7"}, "host"),
        ({"host": "192.168.1.1"}, "host"),
        ({"host": "169.254.169.254", "port": 110}, "host"),
        ({"host": "::1"}, "host"),
        ({"host": "intranet.example.net"}, "host"),  # a name resolving to a private address
        ({"port": 25}, "port"),
        ({"port": 2525}, "port"),
        ({"ca_file": "/etc/ssl/certs/ca-certificates.crt"}, "ca_file"),
    ],
)
def test_non_admins_cannot_aim_at_private_addresses_or_unlisted_ports(
    panel: Panel, change: dict[str, Any], field: str
):
    for who in (panel.user, panel.domain_admin):
        body = public_account(owner=who.mailbox, **change)
        response = panel.api(who).post("/accounts", body)
        assert response.status_code == 422, response.text
        assert error_of(response)["field"] == field
        tested = panel.api(who).post("/accounts/test", body)
        assert tested.status_code == 422  # a connection test is a request to that host too
    account_id = panel.api(panel.user).post("/accounts", public_account()).json()["id"]
    moved = panel.api(panel.user).patch(f"/accounts/{account_id}", change)
    assert moved.status_code == 422
    assert error_of(moved)["field"] == field


def test_an_admin_may_aim_anywhere(panel: Panel):
    body = public_account(owner="user@a.test", host="127.0.0.1", port=2525, security="none")
    response = panel.api(panel.admin).post("/accounts", body)
    assert response.status_code == 201, response.text
    account_id = response.json()["id"]
    # the user keeps the admin's source while changing anything else
    changed = panel.api(panel.user).patch(f"/accounts/{account_id}", {"keep": True})
    assert changed.status_code == 200, changed.text


def test_fetch_now_queues_the_account_for_the_scheduler(panel: Panel):
    api = panel.api(panel.user)
    account_id = api.post("/accounts", public_account()).json()["id"]
    before = time.time()
    response = api.post(f"/accounts/{account_id}/fetch")
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["fetch_requested_at"] >= before
    assert queued["workers_alive"] == 0
    assert panel.app.accounts.get(account_id).fetch_requested_at == queued["fetch_requested_at"]
    assert api.get(f"/accounts/{account_id}").json()["fetch_requested_at"] is not None

    assert api.post(f"/accounts/{account_id}/disable").json()["active"] is False
    refused = api.post(f"/accounts/{account_id}/fetch")
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "inactive"
    assert api.post(f"/accounts/{account_id}/enable").json()["active"] is True


def test_fetch_now_of_a_paused_account_is_refused_and_enable_resumes_it(panel: Panel):
    api = panel.api(panel.user)
    account_id = api.post("/accounts", public_account()).json()["id"]
    with panel.app.db.begin() as conn:
        paused = update(accounts).where(accounts.c.id == account_id)
        conn.execute(paused.values(paused_reason="5 login failures in a row"))
    refused = api.post(f"/accounts/{account_id}/fetch")
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "inactive"
    assert "paused (5 login failures in a row): resume or enable it" in refused.text
    assert panel.app.accounts.get(account_id).fetch_requested_at is None
    enabled = api.post(f"/accounts/{account_id}/enable").json()
    assert enabled["paused_reason"] is None and enabled["state"] != "paused"


def test_resume_polls_a_paused_account_again(panel: Panel):
    api = panel.api(panel.user)
    account_id = api.post("/accounts", public_account()).json()["id"]
    with panel.app.db.begin() as conn:
        paused = update(accounts).where(accounts.c.id == account_id)
        conn.execute(paused.values(paused_reason="5 login failures in a row"))
    assert api.get(f"/accounts/{account_id}").json()["state"] == "paused"  # the control
    resumed = api.post(f"/accounts/{account_id}/resume")
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["paused_reason"] is None and body["state"] != "paused"
    assert body["active"] is True
    assert api.post(f"/accounts/{account_id}/fetch").status_code == 202
    assert panel.api(panel.other_user).post(f"/accounts/{account_id}/resume").status_code == 404
    assert api.post(f"/accounts/{account_id}/fetch").status_code == 202
    with panel.app.db.begin() as conn:
        asked = panel.app.account_store.take_triggers(conn, [account_id])
    assert asked == {account_id: "api"}


def test_poll_queues_every_due_account_within_reach(panel: Panel):
    user_api = panel.api(panel.user)

    def add(api: Api, **changes: Any) -> int:
        response = api.post("/accounts", public_account(**changes))
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    due = add(user_api)
    inactive = add(user_api, active=False)
    paused = add(user_api)
    later = add(user_api)
    others = add(panel.api(panel.other_user))
    with panel.app.db.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.id == paused).values(paused_reason="x"))
        conn.execute(
            update(accounts).where(accounts.c.id == later).values(next_poll_at=time.time() + 600)
        )

    assert user_api.post("/poll").json() == {"queued": 1, "workers_alive": 0}
    assert panel.api(panel.admin).post("/poll").json()["queued"] == 1  # the other user's
    assert panel.api(panel.admin).post("/poll").json()["queued"] == 0  # queued already
    requested = {a.id for a in panel.app.accounts.list_all() if a.fetch_requested_at}
    assert requested == {due, others}
    assert not requested & {inactive, paused, later}


def test_list_pages_and_filters_within_reach(panel: Panel):
    admin = panel.api(panel.admin)
    for n in range(5):
        admin.post("/accounts", public_account(owner=f"u{n}@a.test", username=f"a{n}"))
    for n in range(2):
        admin.post("/accounts", public_account(owner=f"u{n}@b.test", username=f"b{n}"))
    admin.post("/accounts", public_account(owner="z@b.test", username="off", active=False))

    page = admin.get("/accounts", params={"per_page": 3, "page": 2}).json()
    assert (page["total"], page["pages"], page["page"], len(page["items"])) == (8, 3, 2, 3)
    assert admin.get("/accounts", params={"domain": "b.test"}).json()["total"] == 3
    assert admin.get("/accounts", params={"state": "inactive"}).json()["total"] == 1
    found = admin.get("/accounts", params={"q": "u3@"}).json()["items"]
    assert [item["owner"] for item in found] == ["u3@a.test"]
    mine = panel.api(panel.domain_admin).get("/accounts", params={"per_page": 200}).json()
    assert {item["owner"].split("@")[1] for item in mine["items"]} == {"a.test"}
    assert panel.api(panel.user).get("/accounts").json()["total"] == 0
    bad = admin.get("/accounts", params={"per_page": 1000})
    assert (bad.status_code, error_of(bad)["field"]) == (422, "per_page")
    bad = admin.get("/accounts", params={"state": "sleeping"})
    assert (bad.status_code, error_of(bad)["field"]) == (422, "state")


def test_runs_log_and_refusals_of_a_polled_account(panel: Panel, mailbox: Mailbox):
    mailbox.deliver(b"Subject: hello\n\nfirst message\n")
    api = panel.api(panel.user)
    account_id = panel.api(panel.admin).post("/accounts", dovecot_account(mailbox)).json()["id"]
    assert api.get(f"/accounts/{account_id}/log").json() == {
        "account_id": account_id,
        "log": None,
    }
    panel.app.poller.poll(account_id)

    runs = api.get(f"/accounts/{account_id}/runs").json()
    assert [(r["result"], r["fetched"]) for r in runs] == [("ok", 1)]
    assert runs[0]["duration"] >= 0
    log = api.get(f"/accounts/{account_id}/log").json()["log"]
    assert "localhost" in log
    assert mailbox.password not in log
    assert api.get(f"/accounts/{account_id}/refused").json() == []
    retried = api.post(f"/accounts/{account_id}/retry", {"uid": "123"})
    assert retried.json() == {"account_id": account_id, "cleared": 0}
    account = api.get(f"/accounts/{account_id}").json()
    assert (account["state"], account["last_result"]) == ("ok", "ok")


@pytest.mark.databases("sqlite")  # the source alone: the database plays no part
def test_connection_test_with_a_wrong_password_shows_the_servers_words(
    panel: Panel, mailbox: Mailbox
):
    api = panel.api(panel.admin)
    account_id = api.post("/accounts", dovecot_account(mailbox)).json()["id"]
    response = api.post(f"/accounts/{account_id}/test", {"password": "not-the-password"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is False
    assert report["error_kind"] == "auth"
    assert "Authentication failed" in report["message"]  # Dovecot's own words
    assert "not-the-password" not in response.text
    # testing another password does not store it
    assert panel.app.accounts.password_of(account_id) == mailbox.password


def test_refused_messages_are_listed_with_the_backends_words_and_retried(panel: Panel):
    api = panel.api(panel.user)
    account_id = api.post("/accounts", public_account()).json()["id"]
    with panel.app.db.begin() as conn:
        for uid in ("7", "8"):
            conn.execute(
                insert(messages).values(
                    account_id=account_id, folder="INBOX", uidvalidity=0, uid=uid,
                    state="refused", destination="user@a.test", size=10,
                    recorded_at=time.time() + int(uid), note="550 5.7.1 message refused",
                )
            )  # fmt: skip
    refused = api.get(f"/accounts/{account_id}/refused").json()
    assert [(r["uid"], r["note"]) for r in refused] == [
        ("7", "550 5.7.1 message refused"),
        ("8", "550 5.7.1 message refused"),
    ]
    assert api.post(f"/accounts/{account_id}/retry", {"uid": "7"}).json()["cleared"] == 1
    assert api.post(f"/accounts/{account_id}/retry").json()["cleared"] == 1
    assert api.get(f"/accounts/{account_id}/refused").json() == []
