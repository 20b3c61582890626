"""OAuth2 sign-in against a real authorization server (Authlib's, on loopback:
tests/support/oauth_server.py): connecting by the device flow, by the authorization code with
PKCE from the web UI, and by client credentials; tokens refreshed before they run out and
after a refusal, a rotated refresh token kept; a grant refused for good ("sign-in needed": the
scheduler leaves the account alone); a token endpoint that is down (a temporary error)."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailhaul.adapters.db.tables import accounts
from mailhaul.adapters.oauth_endpoint import DeviceAuthorization
from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.errors import AccountBusy, ConfigError, SignInNeeded, TokenEndpointDown
from mailhaul.domain.oauth import Endpoints, Grant
from mailhaul.domain.options import Protocol, Security, SignInMethod
from mailhaul.services.oauth_providers import ProviderRequest
from mailhaul.web.app import create_app
from support.api import PASSWORD, SYSTEM, add_person, make_app
from support.oauth_server import OAuthTestServer
from support.pages import Browser
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer

USER = "me@example.net"


@pytest.fixture
def idp() -> Iterator[OAuthTestServer]:
    with OAuthTestServer(access_lifetime=3600, consent_user=USER) as server:
        yield server


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = make_app(tmp_path / "home", database_url)
    yield app
    app.db.dispose()


def provider(app: App, idp: OAuthTestServer, name: str = "lab", **kwargs: object) -> int:
    secret = str(kwargs.pop("secret", ""))
    grant = kwargs.pop("grant", Grant.USER)
    assert isinstance(grant, Grant)
    idp.add_client(name, secret, redirect_uri=str(kwargs.pop("redirect_uri", "")))
    ends = idp.endpoints()
    request = ProviderRequest(
        name=name,
        client_id=name,
        client_secret=secret,
        grant=grant,
        endpoints=Endpoints(
            ends["authorize_url"], ends["token_url"], ends["device_url"], ends["revoke_url"]
        ),
        scope="mail offline_access",
    )
    return app.oauth_providers.add(request).id


def oauth_account(app: App, provider_id: int) -> Account:
    spec = AccountSpec(
        owner="owner@a.test",
        protocol=Protocol.IMAP,
        host="imap.example.net",
        port=993,
        security=Security.SSL,
        username=USER,
        sign_in=SignInMethod.OAUTH2,
        oauth_provider_id=provider_id,
    )
    return app.accounts.add(spec, None)


def connect(app: App, idp: OAuthTestServer, account: Account) -> DeviceAuthorization:
    shown: list[DeviceAuthorization] = []

    def show(device: DeviceAuthorization) -> None:
        shown.append(device)
        idp.approve_device(device.user_code)  # the user approves at once

    app.sign_in.connect_device(account, show, sleep=lambda _s: None)
    return shown[0]


def mail_server(idp: OAuthTestServer, messages: list[Message]) -> ScriptedImapServer:
    """A started IMAP server that takes the tokens ``idp`` says are active (XOAUTH2)."""
    script = ImapScript(
        username=USER,
        oauth=("XOAUTH2",),
        sasl_ir=True,
        folders={"INBOX": Mailbox(7, messages)},
        token_check=lambda token: idp.active_token(token) is not None,
    )
    server = ScriptedImapServer(script)
    server.start()
    return server


def consent_link(page: str) -> str:
    """The provider's consent URL on the page Connect answers with."""
    found = re.search(r'id="consent-link" class="btn btn-primary" href="([^"]+)"', page)
    assert found is not None, page
    return html.unescape(found.group(1))


def stored_tokens(app: App, account_id: int) -> str:
    with app.db.read() as conn:
        return str(
            conn.scalar(select(accounts.c.oauth_tokens_enc).where(accounts.c.id == account_id))
        )


def test_the_device_flow_connects_and_the_tokens_are_kept_sealed(app: App, idp: OAuthTestServer):
    account = oauth_account(app, provider(app, idp))
    assert app.accounts.get(account.id).sign_in_problem == "not connected yet"
    device = connect(app, idp, account)
    assert device.verification_uri == f"{idp.base}/device" and device.user_code
    fresh = app.accounts.get(account.id)
    assert fresh.sign_in_problem is None and fresh.next_poll_at is not None
    credentials = app.sign_in.credentials(fresh, "")
    assert credentials.method is SignInMethod.OAUTH2
    issued = idp.active_token(credentials.password)
    assert issued is not None and issued.user == USER  # the server's own token
    sealed = stored_tokens(app, account.id)
    assert sealed.startswith("v1.") and credentials.password not in sealed
    assert "refresh" not in sealed and issued.refresh_token not in sealed


def test_a_declined_or_expired_device_code_leaves_the_account_waiting(
    app: App, idp: OAuthTestServer
):
    account = oauth_account(app, provider(app, idp))

    def decline(device: DeviceAuthorization) -> None:
        idp.deny_device(device.user_code)

    with pytest.raises(SignInNeeded, match="declined"):
        app.sign_in.connect_device(account, decline, sleep=lambda _s: None)
    assert app.accounts.get(account.id).sign_in_problem == "not connected yet"
    assert stored_tokens(app, account.id) == ""


def test_tokens_are_refreshed_before_they_run_out_and_rotation_is_kept(
    app: App, idp: OAuthTestServer
):
    idp.access_lifetime = 2  # within its last 5 s from the start: refreshed before use
    account = oauth_account(app, provider(app, idp))
    connect(app, idp, account)
    first = app.sign_in.credentials(app.accounts.get(account.id), "")
    assert idp.state.refreshes.get(USER) == 1
    second = app.sign_in.credentials(app.accounts.get(account.id), "")
    assert idp.state.refreshes.get(USER) == 2  # the rotated refresh token was kept: it works
    assert first.password != second.password
    assert idp.active_token(second.password) is not None
    idp.access_lifetime = 3600
    third = app.sign_in.credentials(app.accounts.get(account.id), "")
    fourth = app.sign_in.credentials(app.accounts.get(account.id), "")
    assert third.password == fourth.password  # the control: a fresh token is not refreshed
    assert idp.state.refreshes.get(USER) == 3
    rejected = app.sign_in.after_rejection(app.accounts.get(account.id))
    assert rejected.password != fourth.password and idp.state.refreshes.get(USER) == 4


def test_a_revoked_grant_means_sign_in_needed_and_no_more_polls(app: App, idp: OAuthTestServer):
    account = oauth_account(app, provider(app, idp))
    connect(app, idp, account)
    with app.db.begin() as conn:  # the control: connected, it is due
        assert app.account_store.claim_due(conn, "w1", time.time() + 1, 60.0, 10) == [account.id]
        app.account_store.release(conn, account.id, "w1")
    idp.revoke_user(USER)  # e.g. the user changed their password at the provider
    with pytest.raises(SignInNeeded, match="refused the grant"):
        app.sign_in.after_rejection(app.accounts.get(account.id))
    stuck = app.accounts.get(account.id)
    assert stuck.sign_in_problem is not None and "invalid_grant" in stuck.sign_in_problem
    assert stored_tokens(app, account.id) == ""
    requests_before = idp.state.token_requests
    with app.db.begin() as conn:
        assert app.account_store.claim_due(conn, "w1", time.time() + 1, 60.0, 10) == []
    with pytest.raises(SignInNeeded):
        app.sign_in.credentials(stuck, "")
    assert idp.state.token_requests == requests_before  # nothing hammers the provider
    status = app.status.account(account.id)
    assert status.state == "sign-in needed" and status.fetch_blocked is not None
    connect(app, idp, stuck)  # reconnecting ends the state
    assert app.accounts.get(account.id).sign_in_problem is None


def test_a_token_endpoint_that_is_down_is_a_temporary_error(app: App, idp: OAuthTestServer):
    idp.access_lifetime = 2
    account = oauth_account(app, provider(app, idp))
    connect(app, idp, account)
    idp.go_down(60)
    with pytest.raises(TokenEndpointDown, match="503"):
        app.sign_in.credentials(app.accounts.get(account.id), "")
    assert app.accounts.get(account.id).sign_in_problem is None  # still connected
    idp.go_down(0)
    assert app.sign_in.credentials(app.accounts.get(account.id), "").password  # the control


def test_client_credentials_need_no_user(app: App, idp: OAuthTestServer):
    provider_id = provider(
        app, idp, "app", secret="app-secret-0123", grant=Grant.CLIENT_CREDENTIALS
    )
    account = oauth_account(app, provider_id)
    assert account.sign_in_problem is None  # nobody has to consent
    credentials = app.sign_in.credentials(account, "")
    issued = idp.active_token(credentials.password)
    assert issued is not None and issued.user == "app"


def test_connect_in_the_web_ui_runs_the_code_flow_with_pkce(app: App, idp: OAuthTestServer):
    add_person(app, "owner", "owner@a.test", Role.USER)
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("owner@a.test", PASSWORD).status_code == 303
    callback = "https://testserver/oauth/callback"
    account = oauth_account(app, provider(app, idp, redirect_uri=callback))
    page = browser.get(f"/accounts/{account.id}")
    assert "sign-in needed" in page.text and ">Connect<" in page.text
    started = browser.post(f"/accounts/{account.id}/connect")
    assert started.status_code == 200, started.text  # a page that moves on by itself
    consent_url = consent_link(started.text)
    assert f'content="0; url={html.escape(consent_url)}"' in started.text
    query = parse_qs(urlsplit(consent_url).query)
    assert consent_url.startswith(f"{idp.base}/authorize?")
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [callback]
    with httpx.Client() as user_agent:  # the user's browser at the provider
        assert "Approve" in user_agent.get(consent_url).text
        approved = user_agent.post(consent_url, data={"user": USER, "decision": "approve"})
    assert approved.status_code == 302
    back = approved.headers["location"]
    assert back.startswith(callback + "?")
    finished = browser.get(back.removeprefix("https://testserver"))
    assert finished.status_code == 303
    assert finished.headers["location"] == f"/accounts/{account.id}"
    assert app.accounts.get(account.id).sign_in_problem is None
    assert "Connected" in browser.get(f"/accounts/{account.id}").text
    replayed = browser.get(back.removeprefix("https://testserver"))
    assert replayed.headers["location"] == "/accounts"  # a state is good for one callback
    other = oauth_account(app, provider(app, idp, "lab2", redirect_uri=callback))
    denied_start = browser.post(f"/accounts/{other.id}/connect").text
    denied_url = consent_link(denied_start)
    with httpx.Client() as user_agent:
        denied = user_agent.post(denied_url, data={"user": USER, "decision": "deny"})
    refused = browser.get(denied.headers["location"].removeprefix("https://testserver"))
    assert refused.headers["location"] == f"/accounts/{other.id}"
    assert "access_denied" in browser.get(f"/accounts/{other.id}").text
    assert app.accounts.get(other.id).sign_in_problem == "not connected yet"


def test_a_poll_signs_in_with_the_token_and_refreshes_it_once_when_refused(
    app: App, idp: OAuthTestServer
):
    messages = [Message(1, b"Subject: one\r\n\r\n1\r\n"), Message(2, b"Subject: two\r\n\r\n2\r\n")]
    server = mail_server(idp, messages)
    script = server.script
    try:
        spec = AccountSpec(
            owner="owner@a.test",
            protocol=Protocol.IMAP,
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
            username=USER,
            sign_in=SignInMethod.OAUTH2,
            oauth_provider_id=provider(app, idp),
        )
        account = app.accounts.add(spec, None)
        connect(app, idp, account)
        first = app.poller.poll(account.id)
        assert (first.result, first.fetched) == ("ok", 2), first.error
        assert idp.state.refreshes.get(USER) is None  # a fresh token: used as it is
        idp.expire_access_tokens()  # the server no longer takes it; our copy does not know
        script.folders["INBOX"].messages.append(Message(3, b"Subject: three\r\n\r\n3\r\n"))
        second = app.poller.poll(account.id)
        assert (second.result, second.fetched) == ("ok", 1), second.error
        assert idp.state.refreshes.get(USER) == 1  # refreshed once, then signed in again
        run_log = app.account_access.last_log(SYSTEM, account.id) or ""
        assert "the server refused the access token: refreshing it" in run_log
        assert not any(t.access_token in run_log for t in idp.state.tokens)
        idp.revoke_user(USER)
        idp.expire_access_tokens()
        third = app.poller.poll(account.id)
        assert third.result == "error" and third.error_kind == "sign_in"
        assert app.accounts.get(account.id).sign_in_problem is not None
        assert len(server.oauth_logins) == 4  # 1, then 1 refused + 1 after the refresh, then 1
    finally:
        server.stop()


def test_the_account_form_adds_an_oauth_account_and_the_page_offers_a_code(
    app: App, idp: OAuthTestServer
):
    add_person(app, "admin", "admin@a.test", Role.ADMIN)
    browser = Browser(TestClient(create_app(app), base_url="https://testserver"))
    assert browser.login("admin@a.test", PASSWORD).status_code == 303
    provider_id = provider(app, idp)
    form = browser.get("/accounts/new")
    assert f'<option value="oauth2:{provider_id}">OAuth2: lab</option>' in form.text
    fields = {
        "owner": "owner@a.test", "protocol": "imap", "security": "ssl",
        "host": "imap.example.net", "username": USER, "folders": "INBOX",
        "interval": "300", "max_size": "10M", "active": "on",
    }  # fmt: skip
    typed = browser.post(
        "/accounts/new", {**fields, "sign_in": f"oauth2:{provider_id}", "password": "x"}
    )
    assert typed.status_code == 400 and "has no password" in typed.text  # nothing was added
    added = browser.post("/accounts/new", {**fields, "sign_in": f"oauth2:{provider_id}"})
    assert added.status_code == 303, added.text
    account_id = int(added.headers["location"].rsplit("/", 1)[1])
    account = app.accounts.get(account_id)
    assert account.spec.sign_in is SignInMethod.OAUTH2 and account.sign_in_problem
    page = browser.get(f"/accounts/{account_id}").text
    assert "press Connect to sign in" in page and "Connect with a code" in page
    shown = browser.post(f"/accounts/{account_id}/connect", {"device": "1"})
    assert shown.status_code == 200
    code = idp.last_user_code()
    assert code in shown.text and f"{idp.base}/device" in shown.text
    waiting = browser.get(f"/accounts/{account_id}/connect/state")
    assert waiting.status_code == 200 and "Waiting" in waiting.text
    idp.approve_device(code)
    deadline = time.time() + 20
    while browser.get(f"/accounts/{account_id}/connect/state").status_code != 286:
        assert time.time() < deadline, "the device flow did not finish"
        time.sleep(0.2)
    assert app.accounts.get(account_id).sign_in_problem is None


def test_two_workers_refresh_one_account_once(
    tmp_path: Path, database_url: str, idp: OAuthTestServer
):
    first = make_app(tmp_path / "one", database_url)
    server = mail_server(idp, [Message(1, b"Subject: one\r\n\r\n1\r\n")])
    second = None
    try:
        spec = AccountSpec(
            owner="owner@a.test",
            protocol=Protocol.IMAP,
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
            username=USER,
            sign_in=SignInMethod.OAUTH2,
            oauth_provider_id=provider(first, idp),
        )
        account = first.accounts.add(spec, None)
        connect(first, idp, account)
        # the second worker shares the database and the key file: the same service
        second = App(replace(first.settings))
        idp.access_lifetime, idp.state.token_delay = 2, 1.0
        connect(first, idp, account)  # a short-lived token: every poll must refresh it
        outcomes: list[str] = []

        def poll(app: App) -> None:
            try:
                outcomes.append(str(app.poller.poll(account.id).result))
            except AccountBusy:
                outcomes.append("busy")

        threads = [threading.Thread(target=poll, args=(a,)) for a in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == ["busy", "ok"]
        assert idp.state.refreshes.get(USER) == 1  # one refresh, by the worker with the lease
    finally:
        server.stop()
        first.db.dispose()
        if second is not None:
            second.db.dispose()


def test_a_provider_registered_by_its_issuer_reads_the_discovery_document(
    app: App, idp: OAuthTestServer
):
    added = app.oauth_providers.add(ProviderRequest("corp", "corp", issuer=idp.base))
    ends = idp.endpoints()
    assert added.endpoints == Endpoints(
        ends["authorize_url"], ends["token_url"], ends["device_url"], ends["revoke_url"]
    )
    assert added.issuer == idp.base and added.scope == "openid offline_access"
    with pytest.raises(ConfigError, match="no discovery document"):
        app.oauth_providers.add(ProviderRequest("none", "c", issuer=f"{idp.base}/nothing-here"))
    with pytest.raises(ConfigError, match="must use https"):
        app.oauth_providers.add(ProviderRequest("far", "c", issuer="http://idp.example.org"))
