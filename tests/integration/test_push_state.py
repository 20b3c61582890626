"""The push state as people see it: the account page's Push row and `mailhaul status`, read
from the rows the watching process keeps (any process can show them), and the words for each
state: watching since …, reconnecting (why), not supported by the server, off."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from mailhaul.adapters.db.tables import push_watches
from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.services.push_status import PushStatus
from mailhaul.web.app import create_app
from support.api import PASSWORD, Api, add_person, make_app
from support.cli import Cli
from support.pages import Browser

SPEC = AccountSpec(
    owner="ann@a.test",
    protocol=Protocol.IMAP,
    host="imap.example.net",
    port=993,
    security=Security.SSL,
    username="ann",
)


def watched(app: App, account: Account, state: str, reason: str = "", alive: bool = True) -> None:
    now = time.time()
    with app.db.begin() as conn:
        conn.execute(
            insert(push_watches).values(
                account_id=account.id,
                worker_id="host:1:abc",
                lease_expires=now + (300 if alive else -1),
                state=state,
                since=now - 60,
                reason=reason,
                events=3,
            )
        )


def test_each_state_in_words(tmp_path: Path, database_url: str):
    app = make_app(tmp_path / "home", database_url)
    status = PushStatus(app.db, default=True)
    words = {}
    for n, (state, reason) in enumerate(
        [
            ("watching", ""),
            ("reconnecting", "the server ended the session: bye"),
            ("unsupported", "imap.example.net does not offer IDLE"),
            ("waiting", "a poll must refresh the OAuth2 access token"),
        ]
    ):
        account = app.accounts.add(replace(SPEC, username=f"u{n}"), "pw-123456")
        watched(app, account, state, reason)
        words[state] = status.of(account).words()
    assert words == {
        "watching": "watching",
        "reconnecting": "reconnecting (the server ended the session: bye)",
        "unsupported": "not supported by the server (polling only)",
        "waiting": "waiting: a poll must refresh the OAuth2 access token",
    }
    off = app.accounts.add(replace(SPEC, username="off", push=False), "pw-123456")
    pop3 = app.accounts.add(replace(SPEC, username="p", protocol=Protocol.POP3), "pw-123456")
    unwatched = app.accounts.add(replace(SPEC, username="idle"), "pw-123456")
    dead = app.accounts.add(replace(SPEC, username="dead"), "pw-123456")
    watched(app, dead, "watching", alive=False)  # its process died: says nothing about now
    assert status.of(off).words() == status.of(pop3).words() == "off"
    assert status.of(unwatched).state == status.of(dead).state == "idle"
    assert PushStatus(app.db, default=False).of(unwatched).words() == "off"
    assert status.counts() == {"watching": 1, "reconnecting": 1, "unsupported": 1, "waiting": 1}
    app.db.dispose()


def test_the_account_page_shows_the_push_state(tmp_path: Path, database_url: str):
    app = make_app(tmp_path / "home", database_url)
    add_person(app, "ann", "ann@a.test", Role.USER)
    account = app.accounts.add(SPEC, "pw-123456")
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("ann@a.test", PASSWORD).status_code == 303
    page = browser.get(f"/accounts/{account.id}").text
    assert '<dd id="push-state">not watched yet (it is while serve or worker runs)</dd>' in page
    watched(app, account, "watching")
    page = browser.get(f"/accounts/{account.id}/live").text
    assert '<dd id="push-state">watching since <time' in page
    app.accounts.edit(account.id, replace(SPEC, push=False))
    assert '<dd id="push-state">off</dd>' in browser.get(f"/accounts/{account.id}").text
    browser.client.close()
    app.db.dispose()


def test_mailhaul_status_counts_watches_and_tells_one_accounts_state(tmp_path: Path):
    cli = Cli(tmp_path / "mh")
    cli.ok("init")
    app = make_app(tmp_path / "mh")
    account = app.accounts.add(SPEC, "pw-123456")
    other = app.accounts.add(replace(SPEC, username="bob"), "pw-123456")
    watched(app, account, "watching")
    watched(app, other, "reconnecting", "connection lost: reset")
    shown = cli.ok("status")
    assert "push: 1 watched (1 reconnecting)" in shown
    one = cli.ok("status", "--account", str(other.id))
    assert f"push of account {other.id}: reconnecting (connection lost: reset)" in one
    data = json.loads(cli.ok("status", "--account", str(account.id), "--json"))
    assert data["summary"]["push"] == {"watching": 1, "reconnecting": 1}
    assert data["accounts"][0]["push"]["state"] == "watching"
    app.db.dispose()


def test_the_api_gives_the_push_state_with_the_account(tmp_path: Path, database_url: str):
    app = make_app(tmp_path / "home", database_url)
    ann = add_person(app, "ann", "ann@a.test", Role.USER)
    account = app.accounts.add(SPEC, "pw-123456")
    with TestClient(create_app(app)) as client:
        api = Api(client, ann.key)
        assert api.get(f"/accounts/{account.id}").json()["push_state"]["state"] == "idle"
        watched(app, account, "unsupported", "imap.example.net does not offer IDLE")
        push = api.get(f"/accounts/{account.id}").json()["push_state"]
        assert push["text"] == "not supported by the server (polling only)"
        assert push["reason"] == "imap.example.net does not offer IDLE"
    app.db.dispose()


def test_an_account_whose_connection_cap_leaves_no_watch_says_so_everywhere(
    tmp_path: Path, database_url: str
):
    caps = {"limits.connections_per_account": "imap.example.net=1, *=4"}
    app = make_app(tmp_path / "home", database_url, caps)
    ann = add_person(app, "ann", "ann@a.test", Role.USER)
    capped = app.accounts.add(SPEC, "pw-123456")
    other = app.accounts.add(replace(SPEC, host="imap.example.org"), "pw-123456")
    said = "polling only: the connection cap for imap.example.net (1) leaves no room for a watch"
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("ann@a.test", PASSWORD).status_code == 303
    assert f'<dd id="push-state">{said}</dd>' in browser.get(f"/accounts/{capped.id}").text
    page = browser.get(f"/accounts/{other.id}").text  # positive control: a cap of 4
    assert '<dd id="push-state">not watched yet (it is while serve or worker runs)</dd>' in page
    browser.client.close()
    with TestClient(create_app(app)) as client:
        push = Api(client, ann.key).get(f"/accounts/{capped.id}").json()["push_state"]
        assert (push["state"], push["text"]) == ("capped", said)
    app.db.dispose()


def test_the_watching_state_names_the_folders_watched(tmp_path: Path, database_url: str):
    app = make_app(tmp_path / "home", database_url)
    add_person(app, "ann", "ann@a.test", Role.USER)
    account = app.accounts.add(SPEC, "pw-123456")
    watched(app, account, "watching", "INBOX, Lists (NOTIFY)")
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("ann@a.test", PASSWORD).status_code == 303
    page = browser.get(f"/accounts/{account.id}/live").text
    assert '<dd id="push-state">watching INBOX, Lists (NOTIFY) since <time' in page
    browser.client.close()
    app.db.dispose()
