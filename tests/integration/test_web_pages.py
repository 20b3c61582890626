"""The server-rendered pages through Starlette's TestClient (over https://, as a browser
would see the Secure cookies): sign-in, CSRF, the throttle, scoping, forms, pagination."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from mailhaul.adapters.db.runs import RunStore
from mailhaul.adapters.db.tables import accounts, messages
from mailhaul.adapters.passwords import PasswordHashes
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.settings import Settings, load_settings
from mailhaul.web.app import create_app
from mailhaul.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Access, access_of
from support.pages import Browser

ADMIN_PASSWORD = "admin-password-1"
USER_PASSWORD = "user-password-1"
SOURCE_PASSWORD = "Src-Pa55word-never-shown"


def make_app(settings: Settings) -> App:
    """The app over ``settings``, with cheap password hashes (argon2's defaults cost ~0.5 s)."""
    init_home(settings)
    app = App(settings)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app.__dict__["password_hashes"] = PasswordHashes(hasher)  # before app.users is made
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = make_app(load_settings(tmp_path / "home", {"poll.timeout": 5}, environ={}))
    system = Principal.system()
    app.users.add(system, "admin", Role.ADMIN, ADMIN_PASSWORD)
    app.users.add(system, "ann@a.test", Role.USER, USER_PASSWORD)
    app.users.add(system, "bob@b.test", Role.USER, USER_PASSWORD)
    app.users.add(system, "dora@a.test", Role.DOMAIN_ADMIN, USER_PASSWORD, ["a.test"])
    yield app
    app.db.dispose()


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="https://testserver") as client:
        yield client


def browser_for(app: App) -> Browser:
    return Browser(TestClient(create_app(app), base_url="https://testserver"))


@pytest.fixture
def admin(client: TestClient) -> Browser:
    browser = Browser(client)
    assert browser.login("admin", ADMIN_PASSWORD).status_code == 303
    return browser


def signed_in(app: App, login: str, password: str = USER_PASSWORD) -> Browser:
    browser = browser_for(app)
    assert browser.login(login, password).status_code == 303
    return browser


def add_account(app: App, owner: str, host: str = "mail.example.net", port: int = 995) -> int:
    spec = AccountSpec(
        owner=owner,
        protocol=Protocol.POP3,
        host=host,
        port=port,
        security=Security.SSL,
        username="remote-user",
    )
    return app.accounts.add(spec, SOURCE_PASSWORD).id


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def account_form(**changes: str) -> dict[str, str]:
    form = {
        "owner": "ann@a.test",
        "protocol": "pop3",
        "security": "ssl",
        "host": "mail.example.net",
        "port": "",
        "username": "remote-user",
        "password": SOURCE_PASSWORD,
        "folders": "INBOX",
        "verify_cert": "on",
        "active": "on",
        "interval": "",
        "max_size": "",
        "deliver_to": "",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != "-"}


def id_in(location: str) -> int:
    """The account id in a redirect to its page (``/accounts/7?after=0&t=…``)."""
    found = re.match(r"/accounts/(\d+)", location)
    assert found is not None, location
    return int(found.group(1))


def field_error(html: str, field: str) -> str | None:
    """The error shown beside ``field``, if the input is marked invalid."""
    tag = re.search(rf'<(?:input|select|textarea) id="f-{field}"[^>]*>', html)
    assert tag is not None, f"no field {field}"
    if 'aria-invalid="true"' not in tag.group(0):
        return None
    message = re.search(rf'<span class="field-error" id="e-{field}">([^<]*)</span>', html)
    assert message is not None
    return message.group(1)


# --- signing in and out ---------------------------------------------------------------------------
def test_pages_send_a_signed_out_visitor_to_the_login_with_next(client: TestClient):
    response = client.get("/accounts?state=error", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Faccounts%3Fstate%3Derror"


def test_login_sets_a_safe_session_cookie_and_logout_ends_the_session(client: TestClient):
    browser = Browser(client)
    response = browser.login("admin", ADMIN_PASSWORD, next_url="/users")
    assert response.status_code == 303
    assert response.headers["location"] == "/users"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "path=/", "samesite=lax"} <= flags
    assert client.get("/accounts", follow_redirects=False).status_code == 200
    token = client.cookies[SESSION_COOKIE]

    assert browser.post("/logout").status_code == 303
    assert SESSION_COOKIE not in client.cookies
    client.cookies.set(SESSION_COOKIE, token)  # the old cookie no longer opens anything
    assert client.get("/accounts", follow_redirects=False).status_code == 303


def test_cookie_is_not_secure_when_the_setting_is_off(tmp_path: Path):
    settings = load_settings(tmp_path / "home", {}, environ={"MAILHAUL_WEB_COOKIE_SECURE": "false"})
    app = make_app(settings)
    app.users.add(Principal.system(), "admin", Role.ADMIN, ADMIN_PASSWORD)
    browser = Browser(TestClient(create_app(app)))  # plain http://
    response = browser.login("admin", ADMIN_PASSWORD)
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "secure" not in cookie.lower()
    assert browser.get("/accounts").status_code == 200
    app.db.dispose()


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_site(client: TestClient, target: str):
    response = Browser(client).login("admin", ADMIN_PASSWORD, next_url=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/accounts"


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client: TestClient):
    response = Browser(client).login("admin", "not-the-password")
    assert response.status_code == 401
    assert "Wrong login or password." in response.text
    assert SESSION_COOKIE not in client.cookies


def test_login_without_its_csrf_token_is_refused(client: TestClient):
    client.get("/login")
    assert LOGIN_CSRF_COOKIE in client.cookies
    response = client.post(
        "/login",
        data={"login": "admin", "password": ADMIN_PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "login form expired" in response.text
    assert SESSION_COOKIE not in client.cookies


def test_login_is_throttled_after_five_failures(client: TestClient):
    browser = Browser(client)
    for _ in range(5):
        response = browser.login("admin", "wrong-password")
    assert response.status_code == 429
    assert re.search(r"Too many failed sign-in attempts: try again in \d+ s\.", response.text)
    assert int(response.headers["retry-after"]) > 0
    # even the right password waits now
    response = browser.login("admin", ADMIN_PASSWORD)
    assert response.status_code == 429
    assert SESSION_COOKIE not in client.cookies


# --- CSRF on the pages ----------------------------------------------------------------------------
def test_a_change_without_the_session_csrf_token_is_refused(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    response = admin.client.post(f"/accounts/{account_id}/disable", follow_redirects=False)
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    response = admin.client.post(
        f"/accounts/{account_id}/disable", data={"csrf_token": "guess"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert app.accounts.get(account_id).spec.active is True
    # the token as a header (what htmx sends) works as well as the form field
    response = admin.client.post(
        f"/accounts/{account_id}/disable",
        headers={"X-CSRF-Token": admin.csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert app.accounts.get(account_id).spec.active is False


def test_every_form_on_the_pages_carries_the_csrf_token(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    for path in ("/accounts", f"/accounts/{account_id}", f"/accounts/{account_id}/edit",
                 f"/accounts/{account_id}/delete", "/accounts/new", "/users", "/users/new",
                 "/users/2", "/users/2/delete", "/me", "/settings", "/status"):  # fmt: skip
        html = admin.get(path).text
        for form in re.findall(r"<form[^>]*>.*?</form>", html, re.DOTALL):
            if 'method="post"' in form:
                assert f'name="csrf_token" value="{admin.csrf}"' in form, (path, form)


# --- scoping --------------------------------------------------------------------------------------
def test_another_users_account_is_not_found_anywhere(app: App):
    theirs = add_account(app, "bob@b.test")
    ann = signed_in(app, "ann@a.test")
    for path in (f"/accounts/{theirs}", f"/accounts/{theirs}/edit", f"/accounts/{theirs}/live",
                 f"/accounts/{theirs}/delete"):  # fmt: skip
        response = ann.get(path)
        assert response.status_code == 404, path
        assert "remote-user" not in response.text
    for path in ("fetch", "disable", "delete", "retry", "test", "edit"):
        assert ann.post(f"/accounts/{theirs}/{path}").status_code == 404, path
    assert app.accounts.get(theirs).spec.active is True
    assert "bob@b.test" not in ann.get("/accounts").text


def test_a_domain_admin_sees_the_accounts_and_users_of_their_domains_only(app: App):
    add_account(app, "ann@a.test")
    add_account(app, "bob@b.test")
    dora = signed_in(app, "dora@a.test")
    listing = dora.get("/accounts").text
    assert "ann@a.test" in listing
    assert "bob@b.test" not in listing
    users = dora.get("/users").text
    assert "ann@a.test" in users
    assert "bob@b.test" not in users
    bob = app.users.by_login(Principal.system(), "bob@b.test")
    assert dora.get(f"/users/{bob.id}").status_code == 404
    response = dora.post(
        "/users/new", {"login": "eve@b.test", "role": "user", "password": "long-enough-pw"}
    )
    assert response.status_code == 400
    assert field_error(response.text, "login")
    assert dora.get("/settings").status_code == 403
    assert dora.get("/status").status_code == 403


def test_a_user_may_not_open_the_admin_pages(app: App):
    ann = signed_in(app, "ann@a.test")
    for path in ("/users", "/users/new", "/settings", "/status"):
        assert ann.get(path).status_code == 403, path
    assert 'href="/users"' not in ann.get("/accounts").text


def test_a_users_account_is_owned_by_and_delivered_to_their_own_address(app: App):
    ann = signed_in(app, "ann@a.test")
    form = ann.get("/accounts/new").text
    assert 'id="f-owner"' not in form  # shown, not editable
    response = ann.post(
        "/accounts/new",
        account_form(owner="bob@b.test", deliver_to="bob@b.test", host="1.1.1.1"),  # no DNS
    )
    assert response.status_code == 303
    account_id = id_in(response.headers["location"])
    spec = app.accounts.get(account_id).spec
    assert (spec.owner, spec.destination) == ("ann@a.test", "ann@a.test")


# --- the account form -----------------------------------------------------------------------------
def test_a_field_error_is_shown_beside_its_field(admin: Browser):
    response = admin.post("/accounts/new", account_form(host="not a host!"))
    assert response.status_code == 400
    assert "is not a valid host name" in (field_error(response.text, "host") or "")
    assert field_error(response.text, "username") is None
    response = admin.post("/accounts/new", account_form(port="99999"))
    assert "a TCP port" in (field_error(response.text, "port") or "")
    response = admin.post("/accounts/new", account_form(owner="no-at-sign"))
    assert field_error(response.text, "owner")
    response = admin.post("/accounts/new", account_form(protocol="imap", folders="INBOX\nINBOX"))
    assert "twice" in (field_error(response.text, "folders") or "")
    response = admin.post("/accounts/new", account_form(interval="5"))
    assert field_error(response.text, "interval")
    # what was typed comes back, except the password
    assert 'value="5"' in response.text
    assert SOURCE_PASSWORD not in response.text


def test_an_empty_port_takes_the_default_of_protocol_and_security(app: App, admin: Browser):
    response = admin.post("/accounts/new", account_form(protocol="imap", security="starttls"))
    assert response.status_code == 303
    account_id = id_in(response.headers["location"])
    spec = app.accounts.get(account_id).spec
    assert (spec.protocol, spec.port) == (Protocol.IMAP, 143)
    assert admin.get(response.headers["location"]).status_code == 200


def test_folders_ticked_after_test_connection_are_added_on_save(app: App, admin: Browser):
    form = account_form(protocol="imap", folders="INBOX\nSent")
    response = admin.client.post(
        "/accounts/new",
        data={
            **form,
            "csrf_token": admin.csrf,
            "folder_choice": ["Archive", "Sent", "Lists/python"],
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    spec = app.accounts.get(id_in(response.headers["location"])).spec
    assert spec.options.folders == ("INBOX", "Sent", "Archive", "Lists/python")


def test_every_option_of_the_form_is_stored(app: App, admin: Browser):
    response = admin.post(
        "/accounts/new",
        account_form(
            protocol="imap", folders="INBOX\nArchive/2024", keep="on", fetchall="on",
            flush="on", verify_cert="-", deliver_to="ann.box@a.test", interval="600",
            max_size="10M", active="-", port="1993",
        ),
    )  # fmt: skip
    assert response.status_code == 303, response.text
    account_id = id_in(response.headers["location"])
    spec = app.accounts.get(account_id).spec
    assert spec.options.folders == ("INBOX", "Archive/2024")
    assert (spec.options.keep, spec.options.fetchall, spec.options.flush) == (True, True, True)
    assert (spec.verify_cert, spec.active, spec.port) == (False, False, 1993)
    assert (spec.deliver_to, spec.interval, spec.options.max_size) == (
        "ann.box@a.test",
        600,
        10 * 1024 * 1024,
    )
    form = admin.get(f"/accounts/{account_id}/edit").text
    assert "Archive/2024" in form
    assert 'value="10M"' in form


def test_an_empty_password_on_edit_keeps_the_stored_one(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    response = admin.post(
        f"/accounts/{account_id}/edit", account_form(password="", username="renamed")
    )
    assert response.status_code == 303
    assert app.accounts.get(account_id).spec.username == "renamed"
    assert app.accounts.password_of(account_id) == SOURCE_PASSWORD
    admin.post(f"/accounts/{account_id}/edit", account_form(password="a-new-one"))
    assert app.accounts.password_of(account_id) == "a-new-one"


def test_the_password_is_never_in_any_page(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test", host="127.0.0.1", port=closed_port())
    pages = [
        admin.get(path).text
        for path in (
            "/accounts",
            f"/accounts/{account_id}",
            f"/accounts/{account_id}/edit",
            f"/accounts/{account_id}/live",
            "/status",
        )
    ]
    pages.append(admin.post(f"/accounts/{account_id}/edit", account_form(host="bad host")).text)
    pages.append(admin.post(f"/accounts/{account_id}/test", account_form(password="")).text)
    pages.append(admin.post("/accounts/new", account_form(port="x")).text)
    pages.append(
        admin.post(
            "/accounts/new/test", account_form(host="127.0.0.1", port=str(closed_port()))
        ).text
    )
    for html in pages:
        assert SOURCE_PASSWORD not in html
    assert all('type="password"' in html for html in pages[2:3] + pages[5:])
    assert 'name="password" type="password" value=""' in pages[2]


def test_test_connection_shows_the_failure_inline_for_htmx_and_on_the_form_without(
    app: App, admin: Browser
):
    port = str(closed_port())
    form = account_form(host="127.0.0.1", port=port)
    fragment = admin.post("/accounts/new/test", form, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "Connection failed" in fragment.text
    assert "refused" in fragment.text.lower()
    page = admin.post("/accounts/new/test", form)
    assert "<html" in page.text
    assert "Connection failed" in page.text
    assert f'value="{port}"' in page.text  # the form comes back as typed
    invalid = admin.post(
        "/accounts/new/test", account_form(host="bad host"), headers={"HX-Request": "true"}
    )
    assert "Not tested" in invalid.text
    assert "host" in invalid.text


# --- the account page -----------------------------------------------------------------------------
def test_fetch_now_queues_then_shows_the_finished_run_with_its_count(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    response = admin.post(f"/accounts/{account_id}/fetch")
    assert response.status_code == 303
    page_url = response.headers["location"]
    assert page_url.startswith(f"/accounts/{account_id}?after=0&t=")
    assert app.accounts.get(account_id).fetch_requested_at is not None
    page = admin.get(page_url).text
    assert "no scheduler is running" in page
    assert 'http-equiv="refresh"' in page  # without JavaScript the page reloads itself

    live = admin.get(f"/accounts/{account_id}/live?after=0&t={time.time()}").text
    assert 'hx-trigger="load delay:1s"' in live  # htmx asks again
    runs = RunStore()
    with app.db.begin() as conn:
        run_id = runs.start(conn, account_id, "manual", time.time() - 2)
        runs.finish(conn, run_id, result="ok", finished_at=time.time(), fetched=3, size=4096,
                    deleted=3, skipped=0, error=None, log="finished: ok; 3 fetched")  # fmt: skip
    live = admin.get(f"/accounts/{account_id}/live?after=0&t={time.time()}").text
    assert "hx-trigger" not in live  # done: no more polling
    assert "3 messages fetched" in live
    assert "finished: ok; 3 fetched" in live  # the last run log
    htmx = admin.post(f"/accounts/{account_id}/fetch", headers={"HX-Request": "true"})
    assert htmx.status_code == 200
    assert '<div id="live"' in htmx.text
    assert f"after={run_id}" in htmx.text


def test_fetch_now_on_a_disabled_account_says_why_it_cannot_run(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    app.accounts.set_active(account_id, False)
    response = admin.post(f"/accounts/{account_id}/fetch")
    page = admin.get(response.headers["location"]).text
    assert "The account is disabled: enable it to fetch." in page
    assert app.accounts.get(account_id).fetch_requested_at is None


def test_enable_disable_retry_and_delete_with_confirmation(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    assert admin.post(f"/accounts/{account_id}/disable").status_code == 303
    assert "Disabled" in admin.get(f"/accounts/{account_id}").text  # the flash message
    assert "Disabled" not in admin.get(f"/accounts/{account_id}").text  # shown once
    assert app.accounts.get(account_id).spec.active is False
    admin.post(f"/accounts/{account_id}/enable")
    assert app.accounts.get(account_id).spec.active is True

    with app.db.begin() as conn:
        conn.execute(
            insert(messages).values(
                account_id=account_id, folder="INBOX", uidvalidity=0, uid="UID-7",
                state="refused", destination="ann@a.test", size=10, recorded_at=time.time(),
                note="552 5.2.2 mailbox full",
            )
        )  # fmt: skip
    page = admin.get(f"/accounts/{account_id}").text
    assert "552 5.2.2 mailbox full" in page
    admin.post(f"/accounts/{account_id}/retry", {"uid": "UID-7"})
    assert "1 refused message(s) will be tried again" in admin.get(f"/accounts/{account_id}").text
    assert app.accounts.refused_of(account_id) == []

    confirm = admin.get(f"/accounts/{account_id}/delete").text
    assert "Mail already delivered stays" in confirm
    assert admin.post(f"/accounts/{account_id}/delete").status_code == 303
    with app.db.begin() as conn:
        assert conn.execute(select(accounts.c.id)).all() == []
    assert admin.get(f"/accounts/{account_id}").status_code == 404


# --- the list -------------------------------------------------------------------------------------
def test_the_list_pages_ten_thousand_accounts_quickly(app: App, admin: Browser):
    now = time.time()
    rows = [
        {
            "owner": f"user{i}@{'a' if i % 2 else 'b'}.test",
            "owner_domain": "a.test" if i % 2 else "b.test",
            "protocol": "imap", "host": f"mail{i}.example.net", "port": 993, "security": "ssl",
            "verify_cert": True, "username": f"u{i}", "password_enc": "", "folders": '["INBOX"]',
            "keep": False, "fetchall": False, "flush": False, "max_size": 1 << 20, "deliver_to": "",
            "interval": 300, "active": True, "created_at": now, "updated_at": now,
            "state": "ok" if i % 3 else "error",
            "next_poll_at": now + 300, "consecutive_failures": 0,
        }
        for i in range(10_000)
    ]  # fmt: skip
    with app.db.begin() as conn:
        conn.execute(insert(accounts), rows)
    started = time.monotonic()
    first = admin.get("/accounts")
    last = admin.get("/accounts?page=200")
    filtered = admin.get("/accounts?domain=a.test&state=error&q=mail1")
    elapsed = time.monotonic() - started
    assert first.text.count('<td class="pick"><input type="checkbox" name="id"') == 50
    assert "1–50 of 10,000" in first.text
    assert 'href="/accounts?page=2"' in first.text
    assert "9,951–10,000 of 10,000" in last.text
    assert "user9999@a.test" in last.text
    assert "user9999@a.test" not in first.text
    assert 'href="/accounts?domain=a.test&amp;state=error&amp;q=mail1&amp;page=2"' in filtered.text
    assert "user2@b.test" not in filtered.text
    assert elapsed < 3.0, f"three list pages over 10,000 accounts took {elapsed:.2f}s"
    assert admin.get("/accounts?page=abc").status_code == 200
    assert admin.get("/accounts?page=999999").status_code == 200


# --- users, keys, admin pages ---------------------------------------------------------------------
def test_users_are_added_edited_and_deleted(app: App, admin: Browser):
    response = admin.post(
        "/users/new",
        {"login": "carl@c.test", "role": "domain_admin", "domains": "c.test, d.test",
         "password": "carls-password"},
    )  # fmt: skip
    assert response.status_code == 303
    carl = app.users.by_login(Principal.system(), "carl@c.test")
    assert carl.domains == frozenset({"c.test", "d.test"})
    short = admin.post("/users/new", {"login": "x@c.test", "role": "user", "password": "short"})
    assert "at least 10" in (field_error(short.text, "password") or "")
    admin.post(f"/users/{carl.id}", {"role": "user", "domains": "", "active": "on"})
    assert app.users.get(Principal.system(), carl.id).role is Role.USER
    assert "carl@c.test" in admin.get("/users").text
    assert "carl@c.test" in admin.get(f"/users/{carl.id}/delete").text
    admin.post(f"/users/{carl.id}/delete")
    assert f'href="/users/{carl.id}"' not in admin.get("/users").text


def test_an_api_key_is_shown_once_and_can_be_revoked(app: App):
    ann = signed_in(app, "ann@a.test")
    created = ann.post("/me/keys", {"name": "cron"})
    assert created.status_code == 200
    secret = re.search(r'value="(mh_[^"]+)"', created.text)
    assert secret is not None
    assert created.headers["cache-control"] == "no-store"
    assert app.users.principal_for_key(secret.group(1)) is not None
    me = ann.get("/me").text
    assert "cron" in me
    assert secret.group(1) not in me
    [key] = app.users.keys(app.users.principal_for_key(secret.group(1)))  # type: ignore[arg-type]
    ann.post(f"/keys/{key.id}/revoke", {"back": "/me"})
    assert app.users.principal_for_key(secret.group(1)) is None


def test_changing_ones_password_needs_the_current_one(app: App):
    ann = signed_in(app, "ann@a.test")
    wrong = ann.post("/me/password", {"current": "nope", "new_password": "new-password-1",
                                      "new_password_again": "new-password-1"})  # fmt: skip
    assert wrong.status_code == 400
    assert field_error(wrong.text, "current")
    done = ann.post("/me/password", {"current": USER_PASSWORD, "new_password": "new-password-1",
                                     "new_password_again": "new-password-1"})  # fmt: skip
    assert done.headers["location"] == "/login?changed=1"
    assert app.users.authenticate("ann@a.test", "new-password-1") is not None


def test_settings_show_no_secret_and_status_shows_workers_and_errors(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "mailhaul.toml").write_text(
        '[delivery]\nmethod = "maildir"\n'
        '[delivery.domains."b.test"]\nmethod = "smtp"\nsmtp = "relay.b.test:25"\n'
        'smtp_username = "relay-user"\nsmtp_password_file = "/etc/mailhaul/relay-secret"\n'
    )
    app = make_app(load_settings(home, {}, environ={}))
    app.users.add(Principal.system(), "admin", Role.ADMIN, ADMIN_PASSWORD)
    admin = signed_in(app, "admin", ADMIN_PASSWORD)
    page = admin.get("/settings").text
    assert "relay.b.test:25" in page
    assert "relay-secret" not in page
    assert "mailhaul.toml" in page
    account_id = add_account(app, "ann@a.test")
    runs = RunStore()
    with app.db.begin() as conn:
        run_id = runs.start(conn, account_id, "schedule", time.time())
        runs.finish(conn, run_id, result="error", finished_at=time.time(), fetched=0, size=0,
                    deleted=0, skipped=0, error="-ERR [AUTH] Authentication failed.",
                    log="")  # fmt: skip
        conn.execute(update(accounts).values(state="error"))
    status = admin.get("/status").text
    assert "-ERR [AUTH] Authentication failed." in status
    assert "No scheduler process has registered" in status
    assert "/accounts?state=error" in status
    app.db.dispose()


def test_output_is_escaped(app: App, admin: Browser):
    response = admin.post("/accounts/new", account_form(host="<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_unknown_pages_are_404_pages_and_the_api_still_answers_json(admin: Browser):
    page = admin.get("/no-such-page", headers={"accept": "text/html"})
    assert page.status_code == 404
    assert "<html" in page.text
    api = admin.client.get("/api/v1/no-such-thing", headers={"accept": "text/html"})
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/json")
    anonymous = TestClient(admin.client.app, base_url="https://testserver")
    api = anonymous.get("/api/v1/accounts", follow_redirects=False)
    assert api.status_code != 303  # never the login page's redirect
    assert api.headers["content-type"].startswith("application/json")


def test_pages_carry_the_security_headers(admin: Browser):
    response = admin.get("/accounts")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text  # no inline script anywhere
    assert " style=" not in response.text
    static = admin.get("/static/htmx.min.js")
    assert static.status_code == 200


def test_every_page_route_declares_its_access(client: TestClient):
    pages = [
        route
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and route.path not in ("/healthz",)
    ]
    assert len(pages) > 30
    for route in pages:
        declared = [access_of(dep.call) for dep in route.dependant.dependencies]
        assert any(declared), f"{route.path} declares no access"
    public = {route.path for route in pages if Access.PUBLIC in [
        access_of(dep.call) for dep in route.dependant.dependencies
    ]}  # fmt: skip
    assert public == {"/login"}


def test_htmx_requests_get_their_errors_as_fragments(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    gone = admin.get(f"/accounts/{account_id + 1}/live?after=0", headers={"HX-Request": "true"})
    assert gone.headers["hx-retarget"] == "#htmx-errors"
    assert "<html" not in gone.text
    assert "no such page or record" in gone.text
    anonymous = TestClient(admin.client.app, base_url="https://testserver")
    expired = anonymous.get(
        f"/accounts/{account_id}/live?after=0",
        headers={
            "HX-Request": "true",
            "HX-Current-URL": f"https://testserver/accounts/{account_id}",
        },
    )
    assert expired.status_code == 401
    assert expired.headers["hx-redirect"] == f"/login?next=%2Faccounts%2F{account_id}"


# --- editable settings -----------------------------------------------------------------------
SETTINGS_FORM = {
    "poll.interval": "300",
    "poll.max_size": "104857600",
    "poll.per_host_limit": "4",
    "poll.max_backoff": "21600",
    "poll.auth_failures_to_pause": "5",
    "runs.keep_days": "30",
    "sources.allowed_ports": "110,143,993,995",
    "notify.mailbox": "on",  # a checked box, as the page shows it
}


def test_an_admin_changes_a_setting_and_new_accounts_take_it(app: App, admin: Browser):
    page = admin.get("/settings").text
    assert 'id="f-poll.interval"' in page
    assert "the default" in page
    saved = admin.post("/settings", {**SETTINGS_FORM, "poll.interval": "600"})
    assert saved.status_code == 303
    assert app.settings.interval == 600
    page = admin.get("/settings").text
    assert "saved here by admin" in page
    assert "Saved poll.interval" in page
    assert app.settings_admin.overview(Principal.system()).value("poll.max_size").source == (
        "default"  # submitted unchanged: not stored
    )
    assert 'placeholder="600"' in admin.get("/accounts/new").text  # a new account's default
    reset = admin.post("/settings", {**SETTINGS_FORM, "reset": "poll.interval"})
    assert reset.status_code == 303
    assert app.settings.interval == 300


def test_a_bad_setting_is_shown_beside_its_field_and_nothing_is_saved(app: App, admin: Browser):
    admin.get("/settings")
    response = admin.post(
        "/settings", {**SETTINGS_FORM, "poll.interval": "0", "runs.keep_days": "7"}
    )
    assert response.status_code == 400
    assert field_error(response.text, "poll.interval") == "must be positive"
    assert field_error(response.text, "runs.keep_days") is None
    assert 'value="0"' in response.text  # what was typed stays in the form
    assert app.settings.runs_keep_days == 30


def test_a_setting_from_the_environment_is_shown_and_its_change_refused(tmp_path: Path):
    settings = load_settings(tmp_path / "home", {}, environ={"MAILHAUL_POLL_MAX_SIZE": "5000"})
    app = make_app(settings)
    app.users.add(Principal.system(), "admin", Role.ADMIN, ADMIN_PASSWORD)
    admin = signed_in(app, "admin", ADMIN_PASSWORD)
    page = admin.get("/settings").text
    assert "set by the environment (MAILHAUL_POLL_MAX_SIZE)" in page
    assert re.search(r'id="f-poll.max_size"[^>]*readonly', page)
    response = admin.post("/settings", {**SETTINGS_FORM, "poll.max_size": "7"})
    assert response.status_code == 400
    assert "set by the environment" in (field_error(response.text, "poll.max_size") or "")
    assert app.settings.max_size == 5000
    app.db.dispose()


def test_only_an_admin_reaches_the_settings_forms(app: App):
    for login in ("ann@a.test", "dora@a.test"):
        someone = signed_in(app, login)
        for path in ("/settings", "/settings/domains/new", "/settings/domains/a.test"):
            assert someone.get(path).status_code == 403, (login, path)
        assert someone.post("/settings", {"poll.interval": "600"}).status_code == 403
        domain = {"domain": "a.test", "method": "lmtp", "lmtp": "127.0.0.1:24"}
        assert someone.post("/settings/domains", domain).status_code == 403
        assert someone.post("/settings/domains/remove", {"domain": "a.test"}).status_code == 403
    assert app.settings_admin.overview(Principal.system()).domains == []
    assert app.settings.interval == 300


def test_a_settings_change_without_the_csrf_token_is_refused(app: App, admin: Browser):
    response = admin.client.post(
        "/settings", data={"poll.interval": "600", "csrf_token": "guess"}, follow_redirects=False
    )
    assert response.status_code == 403
    assert app.settings.interval == 300


def test_an_admin_adds_edits_and_removes_a_domains_delivery(app: App, admin: Browser):
    assert "Add a domain" in admin.get("/settings").text
    admin.get("/settings/domains/new")
    missing = admin.post("/settings/domains", {"domain": "b.test", "method": "lmtp"})
    assert missing.status_code == 400
    assert field_error(missing.text, "lmtp") == "method is &#39;lmtp&#39; but lmtp is empty"
    bad_domain = admin.post("/settings/domains", {"domain": "not a domain", "timeout": "5"})
    assert field_error(bad_domain.text, "domain")
    mda = admin.post("/settings/domains", {"domain": "b.test", "method": "mda"})
    assert field_error(mda.text, "method")
    added = admin.post(
        "/settings/domains", {"domain": "B.test", "method": "lmtp", "lmtp": "127.0.0.1:24"}
    )
    assert added.status_code == 303
    assert app.settings.delivery_domains["b.test"].lmtp == "127.0.0.1:24"
    page = admin.get("/settings").text
    assert 'href="/settings/domains/b.test"' in page
    edit = admin.get("/settings/domains/b.test").text
    assert 'value="127.0.0.1:24"' in edit
    changed = admin.post(
        "/settings/domains",
        {"domain": "b.test", "method": "smtp", "smtp": "relay.b.test:25", "timeout": "30"},
    )
    assert changed.status_code == 303
    delivery = app.settings.delivery_domains["b.test"]
    assert (delivery.method, delivery.smtp, delivery.lmtp, delivery.timeout) == (
        "smtp",
        "relay.b.test:25",
        "",  # not kept from the earlier table: a save replaces the domain's values
        30.0,
    )
    removed = admin.post("/settings/domains/remove", {"domain": "b.test"})
    assert removed.status_code == 303
    assert app.settings.delivery_domains == {}


def _pause(app: App, account_id: int, reason: str) -> None:
    with app.db.begin() as conn:
        paused = update(accounts).where(accounts.c.id == account_id)
        conn.execute(paused.values(paused_reason=reason, state="login failed"))


def test_a_paused_account_says_why_and_can_be_resumed(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    fine = add_account(app, "bob@a.test")
    _pause(app, account_id, "5 login failures in a row")
    listed = admin.get("/accounts").text
    assert "5 login failures in a row" in listed  # the reason, not only a badge
    assert "not while paused" in listed
    page = admin.get(f"/accounts/{account_id}").text
    assert f'action="/accounts/{account_id}/resume"' in page
    assert f'action="/accounts/{fine}/resume"' not in admin.get(f"/accounts/{fine}").text
    fetched = admin.post(f"/accounts/{account_id}/fetch")
    blocked = admin.get(fetched.headers["location"]).text
    assert "paused (5 login failures in a row): resume or enable it to fetch" in blocked
    assert app.accounts.get(account_id).fetch_requested_at is None
    resumed = admin.post(f"/accounts/{account_id}/resume")
    assert resumed.status_code == 303
    assert "Resumed" in admin.get(f"/accounts/{account_id}").text
    account = app.accounts.get(account_id)
    assert (account.paused_reason, account.consecutive_failures) == (None, 0)


def test_a_failing_account_shows_its_error_in_the_list(app: App, admin: Browser):
    account_id = add_account(app, "ann@a.test")
    with app.db.begin() as conn:
        failing = update(accounts).where(accounts.c.id == account_id)
        conn.execute(failing.values(state="error", last_error="cannot connect: refused"))
    assert "cannot connect: refused" in admin.get("/accounts").text


def test_the_account_form_reports_every_field_in_one_round_trip(admin: Browser):
    response = admin.post(
        "/accounts/new",
        account_form(
            host="", port="99999", interval="5", max_size="lots", username="", password=""
        ),
    )
    assert response.status_code == 400
    for field, words in (
        ("host", "must not be empty"),
        ("port", "a TCP port"),
        ("interval", "number of seconds"),
        ("max_size", "100M"),
        ("username", "must not be empty"),
        ("password", "must not be empty"),
    ):
        assert words in (field_error(response.text, field) or ""), field
    assert field_error(response.text, "owner") is None
    assert 'value="99999"' in response.text and 'value="lots"' in response.text  # as typed


def test_a_users_form_shown_again_still_names_their_owner_and_destination(app: App):
    ann = signed_in(app, "ann@a.test")
    response = ann.post("/accounts/new", account_form(host="not a host!", port="0"))
    assert response.status_code == 400
    assert "Owner and destination" in response.text
    owner = re.search(r'<span class="value">([^<]*)</span>', response.text)
    assert owner is not None and owner.group(1) == "ann@a.test"
    assert field_error(response.text, "host") and field_error(response.text, "port")


def test_the_user_form_reports_every_field_and_keeps_what_was_typed(admin: Browser):
    response = admin.post(
        "/users/new",
        {"login": "not an address", "role": "user", "domains": "x.test", "password": "short"},
    )
    assert response.status_code == 400
    assert field_error(response.text, "login")
    assert "only a domain admin" in (field_error(response.text, "domains") or "")
    assert "at least 10" in (field_error(response.text, "password") or "")
    assert 'value="not an address"' in response.text and 'value="x.test"' in response.text
    assert 'value="short"' not in response.text  # a password never comes back


def test_a_user_turns_notices_off_on_their_own_page(app: App):
    ann = signed_in(app, "ann@a.test")
    page = ann.get("/me").text
    assert '<option value="mailbox" selected>' in page
    response = ann.post("/me/notices", {"notices": "off"})
    assert response.status_code == 303
    page = ann.get("/me").text
    assert '<option value="off" selected>' in page and "Saved how you are told" in page
    assert ann.post("/me/notices", {"notices": "sometimes"}).status_code == 400
