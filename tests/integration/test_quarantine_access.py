"""The quarantine as its account's owner reaches it in the panel and the API (real Dovecot,
real clamd): listed, released into the mailbox, deleted; other users get a 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.filtering import FilterOptions, VirusAction
from mailhaul.domain.options import Protocol, Security
from mailhaul.web.app import create_app
from support.api import PASSWORD, SYSTEM, Api, add_person, make_app
from support.dovecot import Mailbox
from support.pages import Browser
from support.scanners import SIGNATURE, ClamdServer, ham, infected

OWNER = "owner@a.test"


@pytest.fixture
def app(tmp_path: Path, clamd: ClamdServer) -> Iterator[App]:
    app = make_app(tmp_path / "home", overrides={"filter.clamd": clamd.address})
    yield app
    app.db.dispose()


def quarantined_account(app: App, mailbox: Mailbox) -> int:
    for raw in (infected(1), ham(2), infected(3)):
        mailbox.deliver(raw.replace(b"\r\n", b"\n"))
    spec = AccountSpec(
        owner=OWNER,
        protocol=Protocol.IMAP,
        host="localhost",
        port=mailbox.ports.imaps,
        security=Security.SSL,
        username=mailbox.user,
        ca_file=str(mailbox.server.ca_path),
        filters=FilterOptions(antivirus=VirusAction.QUARANTINE),
    )
    account = app.accounts.add(spec, mailbox.password)
    summary = app.poller.poll(account.id)
    assert (summary.result, summary.fetched) == ("ok", 3), summary.error
    return account.id


def inbox(app: App) -> list[bytes]:
    maildir = Path(app.settings.home) / "mail" / "a.test" / "owner" / "new"
    return [path.read_bytes() for path in maildir.iterdir()]


def test_the_owner_lists_releases_and_deletes_through_the_api(app: App, mailbox: Mailbox):
    account_id = quarantined_account(app, mailbox)
    owner = add_person(app, "owner", OWNER, Role.USER)
    other = add_person(app, "other", "other@a.test", Role.USER)
    client = TestClient(create_app(app))
    api, stranger = Api(client, owner.key), Api(client, other.key)
    path = f"/accounts/{account_id}/quarantine"

    listed = api.get(path).json()
    assert [entry["subject"] for entry in listed] == ["Invoice 3", "Invoice 1"]
    assert listed[0]["signature"].startswith(SIGNATURE) and listed[0]["scanner"] == "clamd"
    assert stranger.get(path).status_code == 404
    first, third = listed[1]["id"], listed[0]["id"]
    assert stranger.post(f"{path}/{first}/release").status_code == 404
    assert len(inbox(app)) == 1  # the clean message only

    released = api.post(f"{path}/{first}/release")
    assert released.status_code == 200 and released.json()["subject"] == "Invoice 1"
    assert any(b"Subject: Invoice 1" in data for data in inbox(app))
    assert api.delete(f"{path}/{third}").status_code == 204
    assert api.get(path).json() == []
    assert api.post(f"{path}/{third}/release").status_code == 404
    assert len(inbox(app)) == 2


def test_the_owner_releases_from_the_account_page(app: App, mailbox: Mailbox):
    account_id = quarantined_account(app, mailbox)
    app.users.add(SYSTEM, OWNER, Role.USER, PASSWORD)
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login(OWNER, PASSWORD).status_code == 303
    account_page = browser.get(f"/accounts/{account_id}").text
    assert "2 quarantined" in account_page and f"/accounts/{account_id}/quarantine" in account_page
    page = browser.get(f"/accounts/{account_id}/quarantine")
    assert page.status_code == 200 and "Invoice 1" in page.text and SIGNATURE in page.text
    (first,) = [e.id for e in app.quarantine.listed([account_id]) if e.subject == "Invoice 1"]
    done = browser.post(f"/accounts/{account_id}/quarantine/{first}/release")
    assert done.status_code == 303
    after = browser.get(done.headers["location"]).text
    assert "Released into the mailbox: Invoice 1" in after and "Invoice 3" in after
    assert any(b"Subject: Invoice 1" in data for data in inbox(app))
