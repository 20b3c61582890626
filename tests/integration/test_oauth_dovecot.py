"""OAuth2 sign-in against a real Dovecot: its oauth2 passdb takes XOAUTH2 and OAUTHBEARER
and checks each token by RFC 7662 introspection at the test authorization server
(tests/support/oauth_server.py). IMAP and POP3 polls deliver with the token; a token the
server no longer takes is refreshed once mid-life; a revoked grant gives "sign-in needed"
and leaves every message on the server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.bootstrap import App
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.oauth import Endpoints
from mailhaul.domain.options import Protocol, Security, SignInMethod
from mailhaul.services.oauth_providers import ProviderRequest
from support.api import make_app
from support.dovecot import DovecotServer
from support.dovecot_fixture import running_dovecot
from support.oauth_server import OAuthTestServer


@pytest.fixture(scope="module")
def idp() -> Iterator[OAuthTestServer]:
    with OAuthTestServer(access_lifetime=3600) as server:
        server.add_client("mailhaul")
        yield server


@pytest.fixture(scope="module")
def dovecot_oauth(
    tmp_path_factory: pytest.TempPathFactory, idp: OAuthTestServer
) -> Iterator[DovecotServer]:
    root = tmp_path_factory.mktemp("dovecot-oauth")
    with running_dovecot(root, introspection_url=f"{idp.base}/introspect") as server:
        yield server


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = make_app(tmp_path / "home", database_url)
    yield app
    app.db.dispose()


def oauth_account(
    app: App, idp: OAuthTestServer, dovecot: DovecotServer, protocol: Protocol
) -> tuple[Account, str]:
    """A Dovecot user with two messages and an OAuth2 account for it, connected."""
    user = f"u{secrets.token_hex(4)}@example.test"
    dovecot.add_user(user, secrets.token_urlsafe(12))  # the password is never used
    for n in (1, 2):
        dovecot.deliver(user, b"Subject: message %d\r\n\r\nbody %d\r\n" % (n, n))
    ends = idp.endpoints()
    provider = app.oauth_providers.add(
        ProviderRequest(
            name=f"lab{secrets.token_hex(3)}",
            client_id="mailhaul",
            endpoints=Endpoints(token_url=ends["token_url"], device_url=ends["device_url"]),
            scope="mail offline_access",
        )
    )
    port = dovecot.imap_port if protocol is Protocol.IMAP else dovecot.pop3_port
    spec = AccountSpec(
        owner="owner@a.test",
        protocol=protocol,
        host=dovecot.host,
        port=port,
        security=Security.NONE,
        username=user,
        sign_in=SignInMethod.OAUTH2,
        oauth_provider_id=provider.id,
    )
    account = app.accounts.add(spec, None)
    app.sign_in.connect_device(
        account, lambda device: idp.approve_device(device.user_code, user), sleep=lambda _s: None
    )
    return app.accounts.get(account.id), user


@pytest.mark.parametrize("protocol", [Protocol.IMAP, Protocol.POP3])
def test_dovecot_takes_the_token_and_the_poll_delivers(
    app: App, idp: OAuthTestServer, dovecot_oauth: DovecotServer, protocol: Protocol
) -> None:
    account, user = oauth_account(app, idp, dovecot_oauth, protocol)
    summary = app.poller.poll(account.id)
    assert (summary.result, summary.fetched, summary.deleted) == ("ok", 2, 2), summary.error
    assert dovecot_oauth.list_messages(user) == []
    assert "auth: " not in (summary.error or "")


def test_a_token_dovecot_refuses_is_refreshed_once(
    app: App, idp: OAuthTestServer, dovecot_oauth: DovecotServer
) -> None:
    account, user = oauth_account(app, idp, dovecot_oauth, Protocol.IMAP)
    before = idp.state.refreshes.get(user, 0)
    idp.expire_access_tokens()  # Dovecot's introspection now says inactive; our copy does not
    summary = app.poller.poll(account.id)
    assert (summary.result, summary.fetched) == ("ok", 2), summary.error
    assert idp.state.refreshes.get(user, 0) == before + 1


def test_a_revoked_grant_leaves_every_message_on_the_server(
    app: App, idp: OAuthTestServer, dovecot_oauth: DovecotServer
) -> None:
    account, user = oauth_account(app, idp, dovecot_oauth, Protocol.POP3)
    idp.revoke_user(user)
    summary = app.poller.poll(account.id)
    assert summary.result == "error" and summary.error_kind == "sign_in"
    assert summary.fetched == 0 and len(dovecot_oauth.list_messages(user)) == 2
    status = app.status.account(account.id)
    assert status.state == "sign-in needed" and status.sign_in_problem is not None
