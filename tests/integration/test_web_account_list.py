"""The account list through Starlette's TestClient: acting on several accounts at once (and
never on one out of reach), sorting in SQL across pages and filters, the rows refreshing
themselves while a poll runs, warning badges, and times the browser can localise."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx2 as httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from mailhaul.adapters.db.tables import accounts
from mailhaul.adapters.passwords import PasswordHashes
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import AccountSpec, Trigger
from mailhaul.domain.options import Protocol, Security
from mailhaul.settings import load_settings
from mailhaul.web.app import create_app
from support.pages import Browser

PASSWORD = "a-password-for-tests"
SOURCE_PASSWORD = "Src-Pa55word-never-shown"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    settings = load_settings(tmp_path / "home", {"poll.timeout": 5}, environ={})
    init_home(settings)
    app = App(settings)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app.__dict__["password_hashes"] = PasswordHashes(hasher)
    system = Principal.system()
    app.users.add(system, "admin", Role.ADMIN, PASSWORD)
    app.users.add(system, "ann@a.test", Role.USER, PASSWORD)
    app.users.add(system, "dora@a.test", Role.DOMAIN_ADMIN, PASSWORD, ["a.test"])
    yield app
    app.db.dispose()


def signed_in(app: App, login: str) -> Browser:
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login(login, PASSWORD).status_code == 303
    return browser


@pytest.fixture
def admin(app: App) -> Browser:
    return signed_in(app, "admin")


def add_account(
    app: App, owner: str, host: str = "mail.example.net", security: Security = Security.SSL
) -> int:
    spec = AccountSpec(
        owner=owner,
        protocol=Protocol.POP3,
        host=host,
        port=110 if security is Security.NONE else 995,
        security=security,
        username="remote-user",
    )
    return app.accounts.add(spec, SOURCE_PASSWORD).id


def bulk(
    browser: Browser, ids: Sequence[int], path: str = "/accounts/bulk", **fields: str
) -> httpx.Response:
    """The list's form posted with ``ids`` ticked (and the session's CSRF token)."""
    data: dict[str, str | list[str]] = {
        "csrf_token": browser.csrf,
        "id": [str(i) for i in ids],
        **fields,
    }
    return browser.client.post(path, data=data, follow_redirects=False)


def flashes(browser: Browser, response: httpx.Response) -> str:
    """The page a redirect leads to (its flash messages show there)."""
    assert response.status_code == 303, response.text
    return browser.get(response.headers["location"]).text


def active(app: App, account_id: int) -> bool:
    return app.accounts.get(account_id).spec.active


def queued(app: App, account_id: int) -> bool:
    return app.accounts.get(account_id).fetch_requested_at is not None


def set_columns(app: App, account_id: int, **values: object) -> None:
    with app.db.begin() as conn:
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


# --- acting on several accounts ------------------------------------------------------------
def test_ticked_accounts_are_disabled_enabled_and_fetched_together(app: App, admin: Browser):
    first, second, untouched = (add_account(app, f"u{i}@a.test") for i in range(3))
    admin.get("/accounts")
    back = "/accounts?sort=host&page=1"
    response = bulk(admin, [first, second], action="disable", back=back)
    assert response.headers["location"] == back  # back where the list was
    assert "Disabled 2 accounts" in flashes(admin, response)
    assert (active(app, first), active(app, second), active(app, untouched)) == (
        False,
        False,
        True,
    )
    assert "Enabled 2 accounts" in flashes(admin, bulk(admin, [first, second], action="enable"))
    assert active(app, first) and active(app, second)

    page = flashes(admin, bulk(admin, [first, second], action="fetch"))
    assert "Fetch queued for remote-user at mail.example.net, remote-user at" in page
    assert (queued(app, first), queued(app, second), queued(app, untouched)) == (True, True, False)
    assert page.count("queued now") == 2


def test_a_bulk_fetch_skips_a_disabled_account_and_says_why(app: App, admin: Browser):
    ready, disabled = add_account(app, "ann@a.test"), add_account(app, "bob@a.test")
    app.accounts.set_active(disabled, False)
    admin.get("/accounts")
    page = flashes(admin, bulk(admin, [ready, disabled], action="fetch"))
    assert "Fetch queued for remote-user at mail.example.net." in page
    assert "Not fetched: remote-user at mail.example.net: The account is disabled" in page
    assert queued(app, ready) and not queued(app, disabled)


def test_a_rows_fetch_now_queues_that_account_only(app: App, admin: Browser):
    one, ticked = add_account(app, "ann@a.test"), add_account(app, "bob@a.test")
    listing = admin.get("/accounts").text
    assert f'name="fetch_one" value="{one}"' in listing
    response = bulk(admin, [ticked], fetch_one=str(one))
    assert "Fetch queued" in flashes(admin, response)
    assert queued(app, one) and not queued(app, ticked)
    # a disabled account has no Fetch now button (it could not run)
    app.accounts.set_active(one, False)
    assert f'name="fetch_one" value="{one}"' not in admin.get("/accounts").text


def test_a_bulk_delete_asks_first_listing_the_chosen_accounts(app: App, admin: Browser):
    doomed = [add_account(app, "ann@a.test", "one.example.net"),
              add_account(app, "bob@a.test", "two.example.net")]  # fmt: skip
    kept = add_account(app, "cid@a.test", "three.example.net")
    admin.get("/accounts")
    asked = bulk(admin, doomed, action="delete", back="/accounts?q=example")
    assert asked.status_code == 200
    assert "Delete these 2 accounts?" in asked.text
    assert "one.example.net" in asked.text and "two.example.net" in asked.text
    assert "three.example.net" not in asked.text
    assert 'href="/accounts?q=example"' in asked.text  # Cancel: back to the list
    assert len(app.accounts.list_all()) == 3  # nothing deleted yet
    response = bulk(admin, doomed, path="/accounts/bulk/delete", back="/accounts?q=example")
    assert "Delivered mail is untouched" in flashes(admin, response)
    assert [a.id for a in app.accounts.list_all()] == [kept]


@pytest.mark.parametrize("action", ["disable", "fetch", "delete", "bulk-delete"])
def test_nothing_is_done_when_one_ticked_account_is_out_of_reach(app: App, action: str):
    own = add_account(app, "ann@a.test")
    theirs = add_account(app, "bob@b.test")
    ann, dora = signed_in(app, "ann@a.test"), signed_in(app, "dora@a.test")
    path = "/accounts/bulk/delete" if action == "bulk-delete" else "/accounts/bulk"
    fields = {} if action == "bulk-delete" else {"action": action}
    for person in (ann, dora):  # a user and a domain admin of a.test
        person.get("/accounts")
        refused = bulk(person, [own, theirs], path, **fields)
        assert refused.status_code == 404, refused.text
        assert "bob@b.test" not in refused.text
        assert active(app, own) and active(app, theirs)
        assert not queued(app, own) and not queued(app, theirs)
        assert len(app.accounts.list_all()) == 2
        if path == "/accounts/bulk":  # a row's Fetch now
            assert bulk(person, [], path, fetch_one=str(theirs)).status_code == 404
            assert not queued(app, theirs)
    # positive control: the same request on their own account alone does its work
    done = bulk(ann, [own], path, **fields)
    assert done.status_code == (200 if action == "delete" else 303)
    expected = {
        "disable": lambda: not active(app, own),
        "fetch": lambda: queued(app, own),
        "delete": lambda: "Delete this account?" in done.text,
        "bulk-delete": lambda: [a.id for a in app.accounts.list_all()] == [theirs],
    }
    assert expected[action]()


def test_bad_bulk_requests_get_a_clear_message_and_change_nothing(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    admin.get("/accounts")
    none_ticked = bulk(admin, [], action="disable")
    assert "Tick at least one account first." in flashes(admin, none_ticked)
    no_action = bulk(admin, [account_id])
    assert "Choose what to do with the ticked accounts" in flashes(admin, no_action)
    strange = bulk(admin, [account_id], action="format-disk")
    assert "Choose what to do with the ticked accounts" in flashes(admin, strange)
    off_site = bulk(admin, [account_id], action="disable", back="//evil.example/accounts")
    assert off_site.headers["location"] == "/accounts"
    other_page = bulk(admin, [account_id], action="enable", back="/users")
    assert other_page.headers["location"] == "/accounts"
    assert active(app, account_id)  # the last request enabled it again
    forged = admin.client.post(
        "/accounts/bulk", data={"id": str(account_id), "action": "disable"}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert active(app, account_id)


# --- sorting -------------------------------------------------------------------------------
def _insert_accounts(app: App, count: int) -> None:
    now = time.time()
    rows = [
        {
            "owner": f"user{i:03d}@{'a' if i % 2 else 'b'}.test",
            "owner_domain": "a.test" if i % 2 else "b.test",
            "protocol": "imap", "host": f"h{count - i:03d}.example.net", "port": 993,
            "security": "ssl", "verify_cert": True, "username": f"u{i}", "password_enc": "",
            "folders": '["INBOX"]', "keep": False, "fetchall": False, "flush": False,
            "max_size": 1 << 20, "deliver_to": "", "interval": 300, "active": True,
            "created_at": now, "updated_at": now, "state": "ok",
            "next_poll_at": now + 60 * i if i % 10 else None, "consecutive_failures": 0,
            "last_run_at": now - 60 * i,
        }
        for i in range(count)
    ]  # fmt: skip
    with app.db.begin() as conn:
        conn.execute(insert(accounts), rows)


def hosts_in(html: str) -> list[str]:
    return re.findall(r"IMAP · (h\d+)\.example\.net", html)


def test_the_list_sorts_in_sql_and_keeps_the_order_across_pages_and_filters(
    app: App, admin: Browser
):
    _insert_accounts(app, 60)  # hosts h060 … h001, in reverse order of id
    by_id = hosts_in(admin.get("/accounts").text)
    assert by_id[:2] == ["h060", "h059"]  # positive control: unsorted is by id
    first = admin.get("/accounts?sort=host").text
    assert hosts_in(first) == [f"h{n:03d}" for n in range(1, 51)]
    assert hosts_in(admin.get("/accounts?sort=host&page=2").text)[0] == "h051"
    assert hosts_in(admin.get("/accounts?sort=-host").text)[0] == "h060"
    assert 'href="/accounts?sort=host&amp;page=2"' in first  # paging keeps the order
    assert re.search(r'aria-sort="ascending" class="sortable col-host"><a href="/accounts\?'
                     r'sort=-host"', first)  # fmt: skip
    assert 'aria-sort="none" class="sortable col-owner"' in first
    assert '<input type="hidden" name="sort" value="host">' in first  # filtering keeps it
    filtered = admin.get("/accounts?domain=a.test&sort=-host").text
    assert hosts_in(filtered)[:2] == ["h059", "h057"]  # odd ids are in a.test
    assert 'href="/accounts?domain=a.test&amp;sort=host"' in filtered  # sorting keeps filters
    # the next run: soonest first, accounts without one (every tenth) last
    next_runs = hosts_in(admin.get("/accounts?sort=next_run&page=2").text)
    assert next_runs[-6:] == ["h060", "h050", "h040", "h030", "h020", "h010"]
    newest_run_first = hosts_in(admin.get("/accounts?sort=-last_run").text)
    assert newest_run_first[:2] == ["h060", "h059"]
    assert hosts_in(admin.get("/accounts?sort=owner").text)[0] == "h060"
    assert admin.get("/accounts?sort=password_enc").status_code == 200  # ignored: by id
    assert hosts_in(admin.get("/accounts?sort=password_enc").text)[0] == "h060"


# --- refreshing, badges, times -------------------------------------------------------------
def test_the_rows_refresh_themselves_only_while_a_poll_runs_is_queued_or_due(
    app: App, admin: Browser
):
    account_id = add_account(app, "ann@a.test")
    other = add_account(app, "bob@a.test")
    assert 'hx-trigger="every 3s"' in admin.get("/accounts").text  # new: due at once
    for polled in (account_id, other):
        set_columns(app, polled, next_poll_at=time.time() + 300)
    idle = admin.get("/accounts?sort=host").text
    assert "hx-trigger" not in idle
    app.accounts.request_fetch(account_id, Trigger.WEB)
    waiting = admin.get("/accounts?sort=host").text
    assert 'hx-get="/accounts/rows?sort=host" hx-trigger="every 3s"' in waiting
    rows = admin.get(f"/accounts/rows?sort=host&id={other}").text
    assert rows.startswith("<tbody") and "<html" not in rows
    assert f'value="{other}" aria-label="Tick remote-user at mail.example.net:995" checked' in rows
    assert f'value="{account_id}" aria-label="Tick remote-user at mail.example.net:995">' in rows
    set_columns(app, account_id, fetch_requested_at=None)
    set_columns(app, other, lease_owner="w1", lease_expires=time.time() + 60)
    assert 'hx-trigger="every 3s"' in admin.get("/accounts/rows").text  # running
    set_columns(app, other, lease_owner=None, lease_expires=None)
    assert "hx-trigger" not in admin.get("/accounts/rows").text  # done: it stops


def test_the_rows_partial_shows_only_accounts_within_reach(app: App):
    add_account(app, "ann@a.test")
    theirs = add_account(app, "bob@b.test")
    rows = signed_in(app, "ann@a.test").get(f"/accounts/rows?id={theirs}").text
    assert "ann@a.test" in rows and "bob@b.test" not in rows


def test_badges_warn_of_cleartext_passwords_unchecked_certificates_and_trouble(
    app: App, admin: Browser
):
    safe = add_account(app, "ann@a.test", "safe.example.net")
    add_account(app, "ann@a.test", "clear.example.net", Security.NONE)
    unchecked = add_account(app, "ann@a.test", "unchecked.example.net")
    paused = add_account(app, "ann@a.test", "paused.example.net")
    missing = add_account(app, "ann@a.test", "missing.example.net")
    set_columns(app, unchecked, verify_cert=False)
    set_columns(app, paused, paused_reason="5 login failures in a row")
    set_columns(app, missing, state="destination missing")
    app.accounts.set_active(safe, False)
    html = admin.get("/accounts").text
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr>.*?· (\w+)\.example.*?</tr>",
                                                        html, re.DOTALL)}  # fmt: skip
    assert "password in clear" in rows["clear"]
    assert "certificate not verified" in rows["unchecked"]
    assert "badge-paused" in rows["paused"]
    assert "badge-destination-missing" in rows["missing"]
    assert 'class="badge badge-inactive">disabled' in rows["safe"]
    assert "badge-warning" not in rows["safe"]  # positive control: a sound account has none


def test_times_carry_utc_text_and_an_iso_datetime_for_the_browser(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    soon = float(int(time.time()) + 7200)
    set_columns(app, account_id, next_poll_at=soon)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(soon))
    utc = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(soon))
    listing = admin.get("/accounts").text
    assert (
        f'<time datetime="{iso}" title="{utc}" data-time="relative">in 1 h 59 min</time>' in listing
        or f'<time datetime="{iso}" title="{utc}" data-time="relative">in 2 h</time>' in listing
    )
    status = admin.get("/status").text
    assert re.search(r'<time datetime="[0-9T:-]+Z" title="[0-9 :-]+ UTC" data-time="when">'
                     r"[0-9 :-]+ UTC</time>", status)  # fmt: skip
    assert '<script src="/static/mailhaul.js" defer></script>' in listing
    assert admin.client.get("/static/mailhaul.js").status_code == 200
