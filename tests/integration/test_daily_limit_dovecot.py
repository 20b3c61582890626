"""The daily download budget per source host (Gmail's 2,500 MB a day), against a real
Dovecot: a run takes no more than the budget left, an account past it waits in the state
"daily limit" until enough of the last 24 hours' bytes fall out (the deps' clock is moved,
not slept), and every message arrives once, nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import Trigger
from mailhaul.domain.limits import DAY, HostTable
from mailhaul.domain.options import Protocol
from mailhaul.web.app import create_app
from support.api import Api, add_person, client_for
from support.dovecot import Mailbox
from support.mailhaul_home import Home
from support.pages import Browser

BOTH = [Protocol.POP3, Protocol.IMAP]
SIZE = 1500  # each message is a little over this


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    # Three messages of ~1.5 KiB against a budget of 4 KiB a day for the test server.
    home = Home.create(tmp_path / "home", '[limits]\ndaily_bytes_per_host = "localhost=4K"\n')
    yield home
    home.app.db.dispose()


def message(n: int) -> bytes:
    return f"Subject: message {n}\n\n".encode() + b"x" * SIZE + b"\n"


@pytest.mark.parametrize("protocol", BOTH)
def test_an_account_past_its_daily_budget_waits_and_then_gets_the_rest(
    home: Home, mailbox: Mailbox, protocol: Protocol
):
    for n in range(4):
        mailbox.deliver(message(n))
    account = home.add(mailbox, protocol)
    first = home.poll(account)
    # 4 KiB allow two messages whole; the third starts over the budget and waits.
    assert first.fetched == 2 and first.limited_until is None, home.log(account)
    assert home.status(account).state == "ok"  # not spent yet: due again at once
    second = home.poll(account)
    assert second.fetched == 1, home.log(account)  # one always fits: now past the budget
    assert second.limited_until is not None
    status = home.status(account)
    assert status.state == "daily limit" and status.problem is None
    assert status.limited_until == second.limited_until == status.next_poll_at
    assert status.next_poll_at > time.time() + DAY - 600  # about a day after the first run
    assert "daily download limit for localhost reached" in home.log(account)
    assert "resumes at" in status.state_text

    # Asked again before then (Fetch now): nothing is downloaded, the log says why.
    third = home.poll(account)
    assert (third.fetched, third.limited_until) == (0, second.limited_until)
    assert "connecting" not in home.log(account)
    assert "daily download limit for localhost reached" in home.log(account)
    assert len(mailbox.list_messages()) == 1  # the last one waits on the server

    home.move_clock(1.01)  # the first runs' bytes have left the window
    fourth = home.poll(account)
    assert (fourth.fetched, fourth.limited_until) == (1, None), home.log(account)
    assert home.status(account).state == "ok"
    assert sorted(home.delivered()) == sorted(message(n) for n in range(4))
    assert mailbox.list_messages() == []


def test_hosts_without_a_budget_are_not_limited(home: Home, mailbox: Mailbox):
    for n in range(4):
        mailbox.deliver(message(n))
    account = home.add(mailbox, Protocol.IMAP)
    deps = home.app.poller.deps
    home.app.poller.deps = replace(deps, limits=replace(deps.limits, daily_bytes=HostTable()))
    summary = home.poll(account)
    assert (summary.fetched, summary.limited_until) == (4, None)


def test_the_page_and_the_api_say_when_it_resumes(home: Home, mailbox: Mailbox):
    for n in range(3):
        mailbox.deliver(message(n))
    account = home.add(mailbox, Protocol.IMAP)
    home.poll(account)
    assert home.poll(account).limited_until is not None, home.log(account)
    app = home.app
    app.users.add(Principal.system(), "admin", Role.ADMIN, "admin-password-1")
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("admin", "admin-password-1").status_code == 303
    page = browser.get(f"/accounts/{account.id}").text
    assert "badge-daily-limit" in page
    assert "daily download limit for localhost is reached: fetching resumes at" in page
    listed = browser.get("/accounts", params={"state": "daily limit"}).text
    assert f'href="/accounts/{account.id}"' in listed
    others = browser.get("/accounts", params={"state": "error"}).text  # positive control
    assert f'href="/accounts/{account.id}"' not in others

    person = add_person(app, "boss", "boss@example.org", Role.ADMIN)
    shown = Api(client_for(app)[1], person.key).get(f"/accounts/{account.id}").json()
    assert shown["state"] == "daily limit"
    assert shown["limit_resumes_at"] == pytest.approx(shown["next_poll_at"])
    assert shown["last_error"] is None


def test_push_asks_for_nothing_while_the_budget_is_spent(home: Home, mailbox: Mailbox):
    for n in range(3):
        mailbox.deliver(message(n))
    account = home.add(mailbox, Protocol.IMAP)
    home.poll(account)
    assert home.poll(account).limited_until is not None, home.log(account)
    service = home.app.accounts
    service.request_fetch(account.id, Trigger.PUSH)  # new mail seen by the watcher
    assert service.get(account.id).fetch_requested_at is None
    service.request_fetch(account.id, Trigger.WEB)  # a person's Fetch now still runs
    assert service.get(account.id).fetch_requested_at is not None
